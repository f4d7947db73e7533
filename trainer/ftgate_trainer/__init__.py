"""ftgate's trainer: runs one fine-tuning job in a job directory (see trainer/README.md)."""

__version__ = "0.2.0"

# Exit codes: the batch script and the gateway act on them.
EXIT_OK = 0  # completed, or paused on request
EXIT_FAILURE = 1  # any other failure
EXIT_BAD_INPUT = 2  # bad spec or dataset
EXIT_REQUEUE = 75  # checkpointed on a signal without a pause request: requeue me
