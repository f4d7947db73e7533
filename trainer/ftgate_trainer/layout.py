"""Names of the files and directories the trainer reads and writes in a job directory
(trainer/README.md "Files in the job directory"). The gateway's Go code reads the same
names; a Go test checks that this file and the gateway agree."""

JOB_JSON = "job.json"  # the Spec, written by the gateway
CONTROL_JSON = "control.json"  # {"action": "pause"}, written by the gateway before the signal
CONTROL_HANDLED_JSON = "control.handled.json"  # control.json after the trainer paused on it
PROGRESS_JSON = "progress.json"  # replaced atomically by rank 0
METRICS_JSONL = "metrics.jsonl"  # one line appended per logged step, by rank 0
GPU_JSON = "gpu.json"  # written by the GPU sampler (ftctl gpustat) beside the trainer
CHECKPOINTS_DIR = "checkpoints"  # checkpoints/step-<N>/
MODEL_DIR = "model"  # the final model / adapter users download
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files (rank 0)

# Inside a checkpoint directory.
MANIFEST_JSON = "manifest.json"
TRAINER_STATE_JSON = "trainer_state.json"
MODEL_PT = "model.pt"
OPTIMIZER_PT = "optimizer.pt"
RNG_PT = "rng.pt"
DATA_PT = "data.pt"
DCP_DIR = "dcp"  # FSDP: the sharded torch.distributed.checkpoint directory

# Inside model/.
TRAINING_STATE_JSON = "training_state.json"
BASE_DIR = "base"  # builtin:tiny with LoRA: the base model the adapter applies to
MERGED_DIR = "merged"  # LoRA with lora.merge: the adapter merged into the base weights

# Written by the batch script when the checkpoint signal reaches it (Slurm signals the batch
# shell only; ranks under srun + torchrun learn of it from this file). Removed before launch.
STOP_JSON = "stop.json"
# Rank 0's exit code, written just before it exits: torchrun does not pass its workers'
# codes on, and the batch script acts on them (0 done or paused, 75 requeue).
EXIT_CODE_FILE = "trainer.exit"
