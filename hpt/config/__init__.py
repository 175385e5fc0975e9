"""hpt's Hydra configs (``hpt_trainer.yaml``, ``hpt_trainer_cpu.yaml``) and their typed schema."""
