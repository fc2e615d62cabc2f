"""Pure-PyTorch operators that other frameworks ship as compiled extensions (multi-scale
deformable attention, criss-cross attention, point sampling, PSA masks, ...). They run on CPU
and GPU alike and can be exported."""
