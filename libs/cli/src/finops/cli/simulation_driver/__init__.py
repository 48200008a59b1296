"""``finops simulate``'s side that talks to the running stack: the fleet of SDK agents, the
platform calls around it (accounts, experiments, lost events) and the timeline sampler. The
pure, seeded model they drive is :mod:`finops.cli.simulation`."""
