"""The VRAM budget: computed (plan), watched (monitor), pre-allocated (buffers)."""
