/** Gemma 3: config, safetensors, tokenizer, the model, LoRA and generation. */
module dev.jtune.gemma {
    requires transitive dev.jtune.engine;
    requires com.fasterxml.jackson.databind;

    exports dev.jtune.gemma.config;
    exports dev.jtune.gemma.generate;
    exports dev.jtune.gemma.lora;
    exports dev.jtune.gemma.model;
    exports dev.jtune.gemma.safetensors;
    exports dev.jtune.gemma.tokenizer;
    opens dev.jtune.gemma.config to com.fasterxml.jackson.databind;
    opens dev.jtune.gemma.lora to com.fasterxml.jackson.databind;
}
