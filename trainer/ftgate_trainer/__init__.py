"""ftgate's trainer: runs one fine-tuning job in a job directory (see trainer/README.md)."""

__version__ = "0.1.0"
