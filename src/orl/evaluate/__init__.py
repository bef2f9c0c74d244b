"""Transfer protocols of sec. 4.1 / appendix B: VOC07 SVM and low-shot, linear, semi-supervised,
kNN, and export of the backbone for Detectron2."""
