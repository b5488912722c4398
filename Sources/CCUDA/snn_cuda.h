#ifndef SNN_CUDA_H
#define SNN_CUDA_H

/// The C interfaces of the CUDA driver, NVRTC, cuBLAS and cuDNN that SwiftSNN calls, as
/// function-pointer types: nothing is linked, each library is opened at run time (SNNCUDA)
/// and each function found with dlsym is used through these types.
///
/// Written from the public headers (cuda.h, nvrtc.h of CUDA 12 and 13; cublas_api.h with
/// library_types.h; cudnn_graph.h of cuDNN 9). Enumerations there have no negative values, so C
/// compilers give them the type `unsigned int`, which is what they are here. Tests compile
/// `Tests/SNNCUDATests/Prototypes/check_prototypes.c`, which assigns each real function to its
/// type here with incompatible-pointer-type warnings as errors: a prototype that drifts from
/// the real header stops the build of that check.

#include <stddef.h>

// ---- CUDA driver (libcuda.so.1) ----
typedef unsigned int snn_CUresult;           // enum cudaError_enum; CUDA_SUCCESS = 0
typedef int snn_CUdevice;                    // an ordinal
typedef unsigned int snn_CUdevice_attribute; // enum CUdevice_attribute_enum

typedef snn_CUresult (*snn_cuInit_t)(unsigned int flags);
typedef snn_CUresult (*snn_cuDriverGetVersion_t)(int *driverVersion);
typedef snn_CUresult (*snn_cuDeviceGetCount_t)(int *count);
typedef snn_CUresult (*snn_cuDeviceGet_t)(snn_CUdevice *device, int ordinal);
typedef snn_CUresult (*snn_cuDeviceGetName_t)(char *name, int len, snn_CUdevice dev);
typedef snn_CUresult (*snn_cuDeviceTotalMem_v2_t)(size_t *bytes, snn_CUdevice dev);
typedef snn_CUresult (*snn_cuDeviceGetAttribute_t)(int *pi, snn_CUdevice_attribute attrib, snn_CUdevice dev);
typedef snn_CUresult (*snn_cuGetErrorName_t)(snn_CUresult error, const char **pStr);
typedef snn_CUresult (*snn_cuGetErrorString_t)(snn_CUresult error, const char **pStr);

typedef unsigned long long snn_CUdeviceptr; // device memory address
typedef struct CUctx_st *snn_CUcontext;
typedef struct CUstream_st *snn_CUstream;
typedef struct CUmod_st *snn_CUmodule;
typedef struct CUfunc_st *snn_CUfunction;

typedef snn_CUresult (*snn_cuDevicePrimaryCtxRetain_t)(snn_CUcontext *pctx, snn_CUdevice dev);
typedef snn_CUresult (*snn_cuCtxSetCurrent_t)(snn_CUcontext ctx);
typedef snn_CUresult (*snn_cuStreamCreate_t)(snn_CUstream *phStream, unsigned int flags);
typedef snn_CUresult (*snn_cuStreamSynchronize_t)(snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemAllocAsync_t)(snn_CUdeviceptr *dptr, size_t bytesize, snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemFreeAsync_t)(snn_CUdeviceptr dptr, snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemcpyHtoDAsync_v2_t)(snn_CUdeviceptr dstDevice, const void *srcHost, size_t byteCount,
                                                   snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemcpyDtoHAsync_v2_t)(void *dstHost, snn_CUdeviceptr srcDevice, size_t byteCount,
                                                   snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemcpyDtoDAsync_v2_t)(snn_CUdeviceptr dstDevice, snn_CUdeviceptr srcDevice, size_t byteCount,
                                                   snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemsetD8Async_t)(snn_CUdeviceptr dstDevice, unsigned char uc, size_t n, snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemsetD16Async_t)(snn_CUdeviceptr dstDevice, unsigned short us, size_t n, snn_CUstream hStream);
typedef snn_CUresult (*snn_cuMemsetD32Async_t)(snn_CUdeviceptr dstDevice, unsigned int ui, size_t n, snn_CUstream hStream);
typedef struct CUmemPoolHandle_st *snn_CUmemoryPool;
typedef unsigned int snn_CUmemPool_attribute; // enum CUmemPool_attribute_enum; CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4
typedef snn_CUresult (*snn_cuDeviceGetDefaultMemPool_t)(snn_CUmemoryPool *pool_out, snn_CUdevice dev);
typedef snn_CUresult (*snn_cuMemPoolSetAttribute_t)(snn_CUmemoryPool pool, snn_CUmemPool_attribute attr, void *value);
typedef struct CUevent_st *snn_CUevent;
typedef snn_CUresult (*snn_cuMemAllocHost_v2_t)(void **pp, size_t bytesize);
typedef snn_CUresult (*snn_cuMemFreeHost_t)(void *p);
typedef snn_CUresult (*snn_cuEventCreate_t)(snn_CUevent *phEvent, unsigned int Flags);
typedef snn_CUresult (*snn_cuEventRecord_t)(snn_CUevent hEvent, snn_CUstream hStream);
typedef snn_CUresult (*snn_cuEventSynchronize_t)(snn_CUevent hEvent);
typedef snn_CUresult (*snn_cuEventDestroy_v2_t)(snn_CUevent hEvent);
typedef snn_CUresult (*snn_cuModuleLoadData_t)(snn_CUmodule *module, const void *image);
typedef snn_CUresult (*snn_cuModuleGetFunction_t)(snn_CUfunction *hfunc, snn_CUmodule hmod, const char *name);
typedef snn_CUresult (*snn_cuLaunchKernel_t)(snn_CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                             unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                             unsigned int blockDimZ, unsigned int sharedMemBytes, snn_CUstream hStream,
                                             void **kernelParams, void **extra);

// ---- NVRTC (libnvrtc.so.12 / .13) ----
typedef unsigned int snn_nvrtcResult;        // enum nvrtcResult; NVRTC_SUCCESS = 0
typedef struct _nvrtcProgram *snn_nvrtcProgram;

typedef snn_nvrtcResult (*snn_nvrtcVersion_t)(int *major, int *minor);
typedef const char *(*snn_nvrtcGetErrorString_t)(snn_nvrtcResult result);
typedef snn_nvrtcResult (*snn_nvrtcCreateProgram_t)(snn_nvrtcProgram *prog, const char *src, const char *name,
                                                    int numHeaders, const char *const *headers,
                                                    const char *const *includeNames);
typedef snn_nvrtcResult (*snn_nvrtcDestroyProgram_t)(snn_nvrtcProgram *prog);
typedef snn_nvrtcResult (*snn_nvrtcCompileProgram_t)(snn_nvrtcProgram prog, int numOptions, const char *const *options);
typedef snn_nvrtcResult (*snn_nvrtcGetCUBINSize_t)(snn_nvrtcProgram prog, size_t *cubinSizeRet);
typedef snn_nvrtcResult (*snn_nvrtcGetCUBIN_t)(snn_nvrtcProgram prog, char *cubin);
typedef snn_nvrtcResult (*snn_nvrtcGetProgramLogSize_t)(snn_nvrtcProgram prog, size_t *logSizeRet);
typedef snn_nvrtcResult (*snn_nvrtcGetProgramLog_t)(snn_nvrtcProgram prog, char *log);

// ---- cuBLAS (libcublas.so.12 / .13) ----
typedef unsigned int snn_cublasStatus_t;     // enum cublasStatus_t; CUBLAS_STATUS_SUCCESS = 0
typedef unsigned int snn_libraryPropertyType; // enum libraryPropertyType_t: MAJOR_VERSION 0, MINOR_VERSION 1, PATCH_LEVEL 2

typedef struct cublasContext *snn_cublasHandle_t;
typedef unsigned int snn_cublasOperation_t;  // enum cublasOperation_t: CUBLAS_OP_N 0, CUBLAS_OP_T 1
typedef unsigned int snn_cublasMath_t;       // enum cublasMath_t: CUBLAS_DEFAULT_MATH 0, CUBLAS_PEDANTIC_MATH 2

typedef snn_cublasStatus_t (*snn_cublasGetProperty_t)(snn_libraryPropertyType type, int *value);
typedef snn_cublasStatus_t (*snn_cublasCreate_v2_t)(snn_cublasHandle_t *handle);
typedef snn_cublasStatus_t (*snn_cublasDestroy_v2_t)(snn_cublasHandle_t handle);
typedef snn_cublasStatus_t (*snn_cublasSetStream_v2_t)(snn_cublasHandle_t handle, snn_CUstream streamId);
typedef snn_cublasStatus_t (*snn_cublasSetMathMode_t)(snn_cublasHandle_t handle, snn_cublasMath_t mode);
typedef unsigned int snn_cudaDataType;       // enum cudaDataType_t: CUDA_R_32F 0, CUDA_R_16F 2, CUDA_R_16BF 14
typedef unsigned int snn_cublasComputeType_t; // enum cublasComputeType_t: CUBLAS_COMPUTE_32F 68
typedef int snn_cublasGemmAlgo_t;             // enum cublasGemmAlgo_t (has negative values): CUBLAS_GEMM_DEFAULT -1
typedef snn_cublasStatus_t (*snn_cublasGemmEx_t)(snn_cublasHandle_t handle, snn_cublasOperation_t transa,
                                                snn_cublasOperation_t transb, int m, int n, int k, const void *alpha,
                                                const void *A, snn_cudaDataType Atype, int lda, const void *B,
                                                snn_cudaDataType Btype, int ldb, const void *beta, void *C,
                                                snn_cudaDataType Ctype, int ldc, snn_cublasComputeType_t computeType,
                                                snn_cublasGemmAlgo_t algo);
typedef snn_cublasStatus_t (*snn_cublasSgemm_v2_t)(snn_cublasHandle_t handle, snn_cublasOperation_t transa,
                                                  snn_cublasOperation_t transb, int m, int n, int k, const float *alpha,
                                                  const float *A, int lda, const float *B, int ldb, const float *beta,
                                                  float *C, int ldc);

// ---- cuDNN 9 (libcudnn.so.9) ----
typedef size_t (*snn_cudnnGetVersion_t)(void);

#endif
