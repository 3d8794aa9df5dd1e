"""Alert rules, their state machine and the operator commands that act on them."""
