"""Export the shipped building model from its training run (models/TRAINING.md, "Building model").

    python scripts/make_building_model.py RUN/best.pt OUT.onnx

The run comes from ``scripts/train_buildings_gpu.sh`` (SET=3); this adds the card's purpose, colours and
attribution and stores the weights as float16 (half the file; computed in float32).
"""

from __future__ import annotations

import sys

from aerialseg.export import export_onnx

CARD = {
    "description": (
        "Buildings in drone and aerial orthophotos (about 0.05-0.3 m per pixel; works at 0.13 m). UNet-ResNet18 "
        "trained from scratch on 32 drone chips of Banepa, Nepal with strong colour, scale, blur and noise "
        "augmentation. Dense South-Asian town: flat concrete and tin roofs are what it knows best."
    ),
    "classes": [
        {"id": 0, "name": "background", "color": "#EDE8DC"},
        {"id": 1, "name": "building", "color": "#B03A2E"},
    ],
}

if __name__ == "__main__":
    card = export_onnx(sys.argv[1], sys.argv[2], name="aerial-buildings-unet-r18", card_updates=CARD,
                       fp16_weights=True)
    print(card.name, card.metrics)
