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
typedef snn_CUresult (*snn_cuLaunchCooperativeKernel_t)(snn_CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                                        unsigned int gridDimZ, unsigned int blockDimX,
                                                        unsigned int blockDimY, unsigned int blockDimZ,
                                                        unsigned int sharedMemBytes, snn_CUstream hStream,
                                                        void **kernelParams);
typedef snn_CUresult (*snn_cuOccupancyMaxActiveBlocksPerMultiprocessor_t)(int *numBlocks, snn_CUfunction func, int blockSize,
                                                                          size_t dynamicSMemSize);

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

// ---- cuDNN 9 (libcudnn.so.9; the convolution functions of cudnn_cnn.h, descriptors of cudnn_ops.h) ----
typedef size_t (*snn_cudnnGetVersion_t)(void);
typedef unsigned int snn_cudnnStatus_t;        // enum cudnnStatus_t; CUDNN_STATUS_SUCCESS = 0
typedef unsigned int snn_cudnnDataType_t;      // enum cudnnDataType_t: CUDNN_DATA_FLOAT 0
typedef unsigned int snn_cudnnTensorFormat_t;  // enum cudnnTensorFormat_t: CUDNN_TENSOR_NCHW 0
typedef unsigned int snn_cudnnConvolutionMode_t; // enum cudnnConvolutionMode_t: CUDNN_CROSS_CORRELATION 1
typedef unsigned int snn_cudnnMathType_t;      // enum cudnnMathType_t: CUDNN_DEFAULT_MATH 0, CUDNN_FMA_MATH 3
typedef unsigned int snn_cudnnConvolutionAlgo_t; // the three enums cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
typedef struct cudnnContext *snn_cudnnHandle_t;
typedef struct cudnnTensorStruct *snn_cudnnTensorDescriptor_t;
typedef struct cudnnFilterStruct *snn_cudnnFilterDescriptor_t;
typedef struct cudnnConvolutionStruct *snn_cudnnConvolutionDescriptor_t;

/// The layout shared by cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionBwdDataAlgoPerf_t and
/// cudnnConvolutionBwdFilterAlgoPerf_t (the prototype check asserts each field's offset); the
/// Find functions take them by their own struct tags, which stay incomplete here.
typedef struct {
    snn_cudnnConvolutionAlgo_t algo;
    snn_cudnnStatus_t status;
    float time;                  // milliseconds
    size_t memory;               // workspace bytes
    unsigned int determinism;    // enum cudnnDeterminism_t: CUDNN_DETERMINISTIC 1
    snn_cudnnMathType_t mathType;
    int reserved[3];
} snn_cudnnConvolutionAlgoPerf_t;
struct cudnnConvolutionFwdAlgoPerfStruct;
struct cudnnConvolutionBwdDataAlgoPerfStruct;
struct cudnnConvolutionBwdFilterAlgoPerfStruct;

typedef const char *(*snn_cudnnGetErrorString_t)(snn_cudnnStatus_t status);
typedef snn_cudnnStatus_t (*snn_cudnnCreate_t)(snn_cudnnHandle_t *handle);
typedef snn_cudnnStatus_t (*snn_cudnnDestroy_t)(snn_cudnnHandle_t handle);
typedef snn_cudnnStatus_t (*snn_cudnnSetStream_t)(snn_cudnnHandle_t handle, snn_CUstream streamId);
typedef snn_cudnnStatus_t (*snn_cudnnCreateTensorDescriptor_t)(snn_cudnnTensorDescriptor_t *tensorDesc);
typedef snn_cudnnStatus_t (*snn_cudnnSetTensor4dDescriptor_t)(snn_cudnnTensorDescriptor_t tensorDesc,
                                                             snn_cudnnTensorFormat_t format, snn_cudnnDataType_t dataType,
                                                             int n, int c, int h, int w);
typedef snn_cudnnStatus_t (*snn_cudnnDestroyTensorDescriptor_t)(snn_cudnnTensorDescriptor_t tensorDesc);
typedef snn_cudnnStatus_t (*snn_cudnnCreateFilterDescriptor_t)(snn_cudnnFilterDescriptor_t *filterDesc);
typedef snn_cudnnStatus_t (*snn_cudnnSetFilter4dDescriptor_t)(snn_cudnnFilterDescriptor_t filterDesc,
                                                             snn_cudnnDataType_t dataType, snn_cudnnTensorFormat_t format,
                                                             int k, int c, int h, int w);
typedef snn_cudnnStatus_t (*snn_cudnnDestroyFilterDescriptor_t)(snn_cudnnFilterDescriptor_t filterDesc);
typedef snn_cudnnStatus_t (*snn_cudnnCreateConvolutionDescriptor_t)(snn_cudnnConvolutionDescriptor_t *convDesc);
typedef snn_cudnnStatus_t (*snn_cudnnSetConvolution2dDescriptor_t)(snn_cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                                                  int pad_w, int u, int v, int dilation_h, int dilation_w,
                                                                  snn_cudnnConvolutionMode_t mode,
                                                                  snn_cudnnDataType_t computeType);
typedef snn_cudnnStatus_t (*snn_cudnnSetConvolutionGroupCount_t)(snn_cudnnConvolutionDescriptor_t convDesc, int groupCount);
typedef snn_cudnnStatus_t (*snn_cudnnSetConvolutionMathType_t)(snn_cudnnConvolutionDescriptor_t convDesc,
                                                              snn_cudnnMathType_t mathType);
typedef snn_cudnnStatus_t (*snn_cudnnDestroyConvolutionDescriptor_t)(snn_cudnnConvolutionDescriptor_t convDesc);
typedef snn_cudnnStatus_t (*snn_cudnnFindConvolutionForwardAlgorithmEx_t)(
    snn_cudnnHandle_t handle, const snn_cudnnTensorDescriptor_t xDesc, const void *x, const snn_cudnnFilterDescriptor_t wDesc,
    const void *w, const snn_cudnnConvolutionDescriptor_t convDesc, const snn_cudnnTensorDescriptor_t yDesc, void *y,
    const int requestedAlgoCount, int *returnedAlgoCount, struct cudnnConvolutionFwdAlgoPerfStruct *perfResults,
    void *workSpace, size_t workSpaceSizeInBytes);
typedef snn_cudnnStatus_t (*snn_cudnnFindConvolutionBackwardDataAlgorithmEx_t)(
    snn_cudnnHandle_t handle, const snn_cudnnFilterDescriptor_t wDesc, const void *w, const snn_cudnnTensorDescriptor_t dyDesc,
    const void *dy, const snn_cudnnConvolutionDescriptor_t convDesc, const snn_cudnnTensorDescriptor_t dxDesc, void *dx,
    const int requestedAlgoCount, int *returnedAlgoCount, struct cudnnConvolutionBwdDataAlgoPerfStruct *perfResults,
    void *workSpace, size_t workSpaceSizeInBytes);
typedef snn_cudnnStatus_t (*snn_cudnnFindConvolutionBackwardFilterAlgorithmEx_t)(
    snn_cudnnHandle_t handle, const snn_cudnnTensorDescriptor_t xDesc, const void *x, const snn_cudnnTensorDescriptor_t dyDesc,
    const void *y, const snn_cudnnConvolutionDescriptor_t convDesc, const snn_cudnnFilterDescriptor_t dwDesc, void *dw,
    const int requestedAlgoCount, int *returnedAlgoCount, struct cudnnConvolutionBwdFilterAlgoPerfStruct *perfResults,
    void *workSpace, size_t workSpaceSizeInBytes);
typedef snn_cudnnStatus_t (*snn_cudnnConvolutionForward_t)(
    snn_cudnnHandle_t handle, const void *alpha, const snn_cudnnTensorDescriptor_t xDesc, const void *x,
    const snn_cudnnFilterDescriptor_t wDesc, const void *w, const snn_cudnnConvolutionDescriptor_t convDesc,
    snn_cudnnConvolutionAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    const snn_cudnnTensorDescriptor_t yDesc, void *y);
typedef snn_cudnnStatus_t (*snn_cudnnConvolutionBackwardData_t)(
    snn_cudnnHandle_t handle, const void *alpha, const snn_cudnnFilterDescriptor_t wDesc, const void *w,
    const snn_cudnnTensorDescriptor_t dyDesc, const void *dy, const snn_cudnnConvolutionDescriptor_t convDesc,
    snn_cudnnConvolutionAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    const snn_cudnnTensorDescriptor_t dxDesc, void *dx);
typedef snn_cudnnStatus_t (*snn_cudnnConvolutionBackwardFilter_t)(
    snn_cudnnHandle_t handle, const void *alpha, const snn_cudnnTensorDescriptor_t xDesc, const void *x,
    const snn_cudnnTensorDescriptor_t dyDesc, const void *dy, const snn_cudnnConvolutionDescriptor_t convDesc,
    snn_cudnnConvolutionAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    const snn_cudnnFilterDescriptor_t dwDesc, void *dw);

#endif
