# Unsloth training image for GPU machines (provider: unsloth): FastLanguageModel kernels, 4-bit QLoRA.
#
#   docker build -f infra/unsloth.Dockerfile -t secops-ai/unsloth .
#   docker run --gpus all --rm \
#     -v "$SECOPS_HOME/data:/workspace/secops-home/data:ro" \
#     -v "$SECOPS_HOME/models:/workspace/secops-home/models" \
#     -v "$SECOPS_HOME/storage:/workspace/secops-home/storage" \
#     -v "$PWD/configs:/workspace/configs:ro" \
#     secops-ai/unsloth train run configs/sft_qlora_gpu.yaml provider=unsloth
#
# data/ is mounted read-only; the run is written to models/unsloth/<run-id>/ with its model card.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel

ENV PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SECOPS_HOME=/workspace/secops-home

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/secops-ai
COPY pyproject.toml README.md ./
COPY src ./src
# unsloth pins compatible transformers/peft/trl/bitsandbytes/xformers for the CUDA build above.
RUN pip install unsloth "bitsandbytes>=0.43" \
    && pip install --no-deps -e . \
    && pip install pydantic-settings typer rich sqlalchemy pyyaml matplotlib datasets

WORKDIR /workspace
RUN mkdir -p /workspace/secops-home/models /workspace/secops-home/storage
VOLUME ["/workspace/secops-home/data", "/workspace/secops-home/models"]
ENTRYPOINT ["secops-ai"]
CMD ["train", "--help"]
