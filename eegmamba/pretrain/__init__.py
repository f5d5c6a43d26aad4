"""Self-supervised EEGM2 pretraining (``eegmamba-pretrain``) and fine-tuning from its encoder.

- :mod:`eegmamba.pretrain.data`: unlabeled windows through the shared preprocessing and windowing
- :mod:`eegmamba.pretrain.loop`: the pretraining loop (resumable, Ctrl-C safe)
- :mod:`eegmamba.pretrain.run`: one run and its output folder; :mod:`eegmamba.pretrain.cli` the command
- :mod:`eegmamba.pretrain.report`: history.csv, loss curves, reconstruction plot, report.md
- :mod:`eegmamba.pretrain.finetune`: an ``EEGM2Classifier`` from a pretrain folder, a small loop
"""
