"""Applications built on the library: the embedded demo (`hypood demo`) and the demo model's card
(`python -m hypood_ros.apps.model_card`). Nothing in the library imports them."""
