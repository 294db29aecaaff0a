"""ROS 2 glue: the `hypood` node. The only part of the package that imports rclpy."""
