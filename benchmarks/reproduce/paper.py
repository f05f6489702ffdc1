"""The published figures the reproduction compares with, as data.

Jiang, Gu, Liu and Pan, *Delving into Effective Gradient Matching for Dataset
Condensation* (arXiv:2208.00311), Tables 1-3, ConvNet accuracy (%) on
Fashion-MNIST (Table 2: SVHN at ipc 1, the only column the paper gives),
DSA's Fashion-MNIST figures (Zhao and Bilen, ICML 2021), and DM's (Zhao and
Bilen, WACV 2023), which has none for Fashion-MNIST. A table's rows are
``(label, method, figures)``: ``method`` names the reproduction cell that
stands for the row (see :mod:`reproduce.methods`), ``figures`` the published
accuracy by ipc (Table 2: one figure).
"""

from __future__ import annotations

#: Table 1, what to match: (label, method, the paper's figure by ipc).
TABLE1 = [("intra-class", "dc", {1: 70.5, 10: 82.3}), ("inter-class", "inter", {1: 70.2, 10: 82.4}),
          ("interleaved", "interleaved", {1: 70.6, 10: 83.1}), ("multi-level", "m", {1: 70.6, 10: 84.4})]
#: The paper's standard deviations for Table 1 (method -> by ipc).
TABLE1_STD = {"dc": {1: 0.6, 10: 0.4}, "inter": {1: 0.7, 10: 0.3},
              "interleaved": {1: 0.6, 10: 0.3}, "m": {1: 0.7, 10: 0.3}}

#: Table 2, the distances with multi-level matching (SVHN, ipc 1): (label, method, figure).
TABLE2 = [("d1 (cos)", "m", 32.9), ("d2 (l2)", "m-l2", 23.6), ("d3 (sse)", "m-sse", 24.3),
          ("100 d4 (100*mse)", "m-100mse", 23.5), ("d1+d2 (cos+l2)", "md", 34.5),
          ("d1+d3 (cos+sse)", "m-cos+sse", 34.1), ("d1+100 d4 (cos+100*mse)", "m-cos+100mse", 34.0)]
#: The paper's standard deviations for Table 2 (method -> deviation).
TABLE2_STD = {"m": 1.2, "m-l2": 2.1, "m-sse": 1.8, "m-100mse": 1.4, "md": 1.9,
              "m-cos+sse": 2.0, "m-cos+100mse": 1.4}

#: Table 3, the ablation: (label, method, the paper's figure by ipc).
TABLE3 = [("Random", "random", {1: 51.4, 10: 73.8, 50: 82.5}), ("Herding", "herding", {1: 67.0, 10: 71.1, 50: 71.9}),
          ("DC baseline", "dc", {1: 70.5, 10: 82.3, 50: 83.6}), ("Ours-M", "m", {1: 70.6, 10: 84.4, 50: 87.8}),
          ("Ours-MD", "md", {1: 71.4, 10: 85.4, 50: 87.4}), ("Ours-MDO", "mdo", {10: 84.6, 50: 87.9}),
          ("Ours-MDA", "mda", {10: 84.2, 50: 87.9})]
#: The paper's standard deviations for Table 3 (method -> by ipc).
TABLE3_STD = {"random": {1: 3.8, 10: 0.7, 50: 0.7}, "herding": {1: 1.9, 10: 0.7, 50: 0.8},
              "dc": {1: 0.6, 10: 0.4, 50: 0.4}, "m": {1: 0.7, 10: 0.3, 50: 0.2},
              "md": {1: 0.6, 10: 0.3, 50: 0.2}, "mdo": {10: 0.3, 50: 0.2}, "mda": {10: 0.3, 50: 0.2}}
#: The paper's whole-training-set figure for Fashion-MNIST.
PAPER_WHOLE_SET = 93.5
#: Outer iterations K of the paper's runs.
PAPER_ITERATIONS = 1000

#: DSA's published figures, ConvNet on Fashion-MNIST, by ipc: DC+DSA in our terms.
DSA_PAPER = {1: 70.6, 10: 84.6, 50: 88.7}
#: DSA's evaluation: augmented batches for this many epochs.
DSA_EVAL_EPOCHS = 1000
#: Epochs of IDC's evaluation recipe (DSA and CutMix, batch 64, lr x0.2 at 2/3 and 5/6).
IDC_EVAL_EPOCHS = 1000
#: Rows of the DSA table: (label, method, published figure by ipc; empty where none is published).
TABLE_DSA = [("DC (no augmentation)", "dc", {}), ("Ours-MD (no augmentation)", "md", {}),
             ("Ours-MD, evaluated with DSA", "md@dsa-eval", {}), ("DC+DSA", "dc+dsa", DSA_PAPER),
             ("Ours-MD+DSA", "md+dsa", {}), ("Ours-MDA (no augmentation)", "mda", {}),
             ("Ours-MDA, evaluated with DSA", "mda@dsa-eval", {}), ("Ours-MDA+DSA", "mda+dsa", {})]

#: Distribution matching's published figures (Zhao and Bilen, WACV 2023), ConvNet,
#: by ipc: the paper has no Fashion-MNIST figure; CIFAR-10's are kept for the note.
DM_PAPER = {}
DM_PAPER_CIFAR10 = {1: 26.0, 10: 48.9, 50: 63.0}
#: DM's outer iterations in its paper.
DM_PAPER_ITERATIONS = 20000
