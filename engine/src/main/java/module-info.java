/**
 * jtune's tensor engine. Exported to everyone: tensors, scopes, devices and dtypes ({@code dev.jtune.engine}), the
 * differentiable ops, the module tree ({@code nn}), optimizers, activation offload, NF4 quantization, memory statistics
 * and the collectives of data-parallel training ({@code dist}). Backends,
 * fused-op kernels and file helpers are internal, exported only to jtune's own modules.
 */
module dev.jtune.engine {
    requires transitive dev.jtune.cuda;
    // the host-offloaded optimizer's update (optim.host); still an incubator module in Java 25, so a class-path launch
    // needs --add-modules jdk.incubator.vector, without which that update runs its scalar reference
    requires jdk.incubator.vector;

    exports dev.jtune.engine;
    exports dev.jtune.engine.dist;
    exports dev.jtune.engine.memory;
    exports dev.jtune.engine.nn;
    exports dev.jtune.engine.ops;
    exports dev.jtune.engine.offload;
    exports dev.jtune.engine.optim;
    exports dev.jtune.engine.quant;
    exports dev.jtune.engine.backend to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.cpu to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.cuda to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.fused to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.io to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.meta to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.optim.host to dev.jtune.gemma, dev.jtune.train;
}
