"""Rule-based reward functions in verl's ``custom_reward_function`` contract, one module per task."""
