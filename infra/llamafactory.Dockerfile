# LLaMA-Factory training image for GPU machines (provider: llamafactory).
#
#   docker build -f infra/llamafactory.Dockerfile -t secops-ai/llamafactory .
#   docker run --gpus all --rm \
#     -v "$SECOPS_HOME/data:/workspace/secops-home/data:ro" \
#     -v "$SECOPS_HOME/models:/workspace/secops-home/models" \
#     -v "$SECOPS_HOME/storage:/workspace/secops-home/storage" \
#     -v "$PWD/configs:/workspace/configs:ro" \
#     secops-ai/llamafactory train run configs/sft_qlora_gpu.yaml provider=llamafactory
#
# data/ is mounted read-only (datasets are immutable); results land in models/<provider>/<run-id>/ and the
# registry (secops.db, or PostgreSQL through DATABASE_URL) picks them up.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SECOPS_HOME=/workspace/secops-home

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/secops-ai
COPY pyproject.toml README.md ./
COPY src ./src
# LLaMA-Factory brings its own pinned transformers/peft/trl; bitsandbytes for QLoRA (quantization_bit: 4).
RUN pip install "llamafactory[torch,metrics]" "bitsandbytes>=0.43" \
    && pip install --no-deps -e . \
    && pip install pydantic-settings typer rich sqlalchemy pyyaml matplotlib

WORKDIR /workspace
RUN mkdir -p /workspace/secops-home/models /workspace/secops-home/storage
VOLUME ["/workspace/secops-home/data", "/workspace/secops-home/models"]
ENTRYPOINT ["secops-ai"]
CMD ["train", "--help"]
