// oneDNN 2.x C API. Every call into it lives in Sources/SNNCPU/DNNL.swift.
#include <oneapi/dnnl/dnnl.h>
