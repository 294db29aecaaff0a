"""`hypood fleet`: a model (and a baseline) over many drive logs, offline, on Ray.

`work` is the unit of work on one bag (ROS-free, Ray-free), `engine` spreads it over Ray workers, `report`
writes the per-bag and aggregate results.
"""
