"""Process monitoring for supervisors: instances, heat maps, incidents, case history diagrams."""
