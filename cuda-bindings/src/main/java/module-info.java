/** FFM bindings to the CUDA driver, NVRTC, cuBLAS and cuBLASLt: internal to jtune. */
module dev.jtune.cuda {
    exports dev.jtune.cuda to dev.jtune.engine, dev.jtune.gemma, dev.jtune.train;
}
