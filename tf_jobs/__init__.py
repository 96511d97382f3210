"""TensorFlow programs run by the train and evaluate stages, and what predict shares."""
