"""Video in, faces out: decoding, face detection, alignment, tracking, crops and annotation."""
