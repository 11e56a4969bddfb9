/**
 * FFM bindings to the CUDA 13 driver ({@link dev.jtune.cuda.CudaDriver}), NVRTC ({@link dev.jtune.cuda.Nvrtc}),
 * cuBLAS ({@link dev.jtune.cuda.Cublas}) and cuBLASLt ({@link dev.jtune.cuda.CublasLt}), hand-written in
 * jextract's shape; {@code symbols.txt} at the module root lists every symbol bound.
 * <p>
 * {@link dev.jtune.cuda.NativeLibraries} finds the libraries, {@link dev.jtune.cuda.CudaException} turns
 * result codes into exceptions. The JVM needs {@code --enable-native-access=ALL-UNNAMED} (or the module's
 * name) to call them without warnings.
 */
package dev.jtune.cuda;
