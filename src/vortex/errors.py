"""Every error Vortex raises on purpose. Each message names what is wrong and what would fix it."""


class VortexError(Exception):
    """Base class: an error whose message is meant for the user, printed without a traceback."""


class RecipeError(VortexError):
    """A recipe field is missing, of the wrong type or out of range."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"recipe field '{field}': {problem}")


class ConfigError(VortexError):
    """The configuration or profile is malformed or names something that does not exist."""


class WeightsNotFoundError(VortexError):
    """A model's weights are not on this machine (Vortex never downloads behind the user's back)."""


class VortexInitializationError(VortexError):
    """A component could not be loaded (out of memory, incompatible weights, missing dependency)."""


class MemoryPressureError(VortexError):
    """GPU memory in use crossed the configured hard limit."""


class PlanOverBudgetError(VortexInitializationError):
    """The computed VRAM plan does not fit the hard limit, so the pipeline refuses to start."""


class SpeechTooLongError(VortexError):
    """The script cannot be spoken within the slot, even at the fastest allowed speed."""


class DeadlineExceeded(VortexError):
    """The slot's deadline passed; carries the phase that was running."""

    def __init__(self, phase: str, deadline_s: float):
        self.phase = phase
        super().__init__(f"deadline of {deadline_s:.2f} s exceeded during phase '{phase}'")


class EngineClosed(VortexError):
    """A request reached an engine after `close()`."""


class EngineDead(VortexError):
    """A device fault (a CUDA error) poisoned the process: its owner must restart it."""
