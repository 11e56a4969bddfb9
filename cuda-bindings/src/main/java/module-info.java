/**
 * jtune's lowest module: the root of every jtune exception ({@code dev.jtune.JtuneException}), and the FFM bindings
 * to the CUDA driver, NVRTC, cuBLAS and cuBLASLt, which are internal to jtune.
 */
module dev.jtune.cuda {
    exports dev.jtune;
    exports dev.jtune.cuda to dev.jtune.engine, dev.jtune.gemma, dev.jtune.train;
}
