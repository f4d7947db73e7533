"""Names of the files and directories the trainer reads and writes in a job directory
(trainer/README.md "Files in the job directory"), shared with the gateway
(internal/job/layout.go; a Go test compares the two, so each name stays on a line of its
own: NAME = "value", comments above)."""

# The Spec, written by the gateway.
JOB_JSON = "job.json"
# {"action": "pause"}, written by the gateway before it sends the checkpoint signal.
CONTROL_JSON = "control.json"
# control.json renamed by the trainer once it paused on it.
CONTROL_HANDLED_JSON = "control.handled.json"
# Replaced atomically by rank 0.
PROGRESS_JSON = "progress.json"
# One line appended per logged step, by rank 0.
METRICS_JSONL = "metrics.jsonl"
# Written by the GPU sampler (ftctl gpustat) beside the trainer.
GPU_JSON = "gpu.json"
# checkpoints/step-<N>/
CHECKPOINTS_DIR = "checkpoints"
# The final model or adapter users download.
MODEL_DIR = "model"
# TensorBoard event files (rank 0).
TENSORBOARD_DIR = "tensorboard"
# Written by the batch script when the checkpoint signal reaches it (Slurm signals the batch
# shell only; ranks under srun + torchrun learn of it from this file). Removed before launch.
STOP_JSON = "stop.json"
# Rank 0's exit code, written just before it exits: torchrun does not pass its workers'
# codes on, and the batch script acts on them (0 done or paused, 75 requeue).
EXIT_CODE_FILE = "trainer.exit"

# Inside a checkpoint directory.
MANIFEST_JSON = "manifest.json"
TRAINER_STATE_JSON = "trainer_state.json"
MODEL_PT = "model.pt"
OPTIMIZER_PT = "optimizer.pt"
RNG_PT = "rng.pt"
DATA_PT = "data.pt"
# FSDP: the sharded torch.distributed.checkpoint directory.
DCP_DIR = "dcp"

# Inside model/.
TRAINING_STATE_JSON = "training_state.json"
# builtin:tiny with LoRA: the base model the adapter applies to.
BASE_DIR = "base"
# LoRA with lora.merge: the adapter merged into the base weights.
MERGED_DIR = "merged"
