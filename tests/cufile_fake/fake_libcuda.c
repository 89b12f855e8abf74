/* A stand-in libcuda.so.1 for `gdswap check` tests: only cuDriverGetVersion, which is all the
 * check reads from the CUDA driver (the CUDA layer's own fake lives with its tests). */
int cuDriverGetVersion(int *version) {
    *version = 12040;
    return 0;
}
