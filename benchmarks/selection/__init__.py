"""Rollout-selection benchmark: HPT switch with ``trainer.rollout_selection`` off and on."""
