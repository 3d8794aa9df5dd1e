"""Running the model: pre-processing, the onnxruntime session, output adapters."""
