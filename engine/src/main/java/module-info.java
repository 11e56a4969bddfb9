/** jtune's tensor engine: tensors, scopes, ops, autograd, optimizers and quantization; backends are internal. */
module dev.jtune.engine {
    requires transitive dev.jtune.cuda;

    exports dev.jtune.engine;
    exports dev.jtune.engine.ops;
    exports dev.jtune.engine.optim;
    exports dev.jtune.engine.quant;
    exports dev.jtune.engine.io;
    exports dev.jtune.engine.memory;
    exports dev.jtune.engine.backend to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.cpu to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.cuda to dev.jtune.gemma, dev.jtune.train;
    exports dev.jtune.engine.meta to dev.jtune.gemma, dev.jtune.train;
}
