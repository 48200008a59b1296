"""Use cases of the auth service: orchestrate the domain over the ports in ``ports``."""
