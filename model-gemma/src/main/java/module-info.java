/** Gemma 3: config, safetensors, tokenizer, the model, LoRA and generation. */
module dev.jtune.gemma {
    requires transitive dev.jtune.engine;
    requires com.fasterxml.jackson.databind;
    requires static java.desktop; // ImageIO decodes images; a runtime without it can still train text

    exports dev.jtune.gemma.config;
    exports dev.jtune.gemma.generate;
    exports dev.jtune.gemma.lora;
    exports dev.jtune.gemma.model;
    exports dev.jtune.gemma.safetensors;
    exports dev.jtune.gemma.tokenizer;
    exports dev.jtune.gemma.vision;
    opens dev.jtune.gemma.config to com.fasterxml.jackson.databind;
    opens dev.jtune.gemma.lora to com.fasterxml.jackson.databind;
}
