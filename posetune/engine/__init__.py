"""Training engine on Lightning: module, optimisers/schedules, freezing, callbacks, fit."""
