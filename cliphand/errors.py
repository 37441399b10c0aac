"""Exceptions raised on bad input, so that every stage fails with a message naming the file and the problem."""


class DataError(RuntimeError):
    """Raised when an input file or data source is missing, corrupt or of the wrong shape or units.

    The message always names the offending path (or data source) and what is wrong with it.
    """


class TrainingError(RuntimeError):
    """Raised when training cannot go on, e.g. a non-finite loss; the message names the step and the loss term."""
