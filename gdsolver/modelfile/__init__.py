"""Services on model files, for the `compile`, `apply`, `evaluate` and `train` commands and the
benchmarks: compile a model file (or a layer file) into a sweep instance with the trainer's
defaults (`compile`), write a solved sweep back into the model it came from (`apply`), score a
model on data (`evaluate`), and load data sets and users' .npz files (`data`).

It sits above gdsolver.train (a model is compiled the way a trainer prepares its sweeps) and
below gdsolver.bench and the command line."""
