// Compiled by NVRTCTests with the real CUDA headers (the nvidia-cuda-* wheels that `make`
// installs, and cuBLAS's, cuDNN's and NCCL's headers that scripts/fetch_library_headers.py reads
// out of their wheels) and -Werror=incompatible-pointer-types: each line assigns a real function
// to SwiftSNN's type for it (Sources/CCUDA/snn_cuda.h, Sources/CNCCL/shim.h), so a prototype that
// differs from the header fails to compile. cuBLAS, cuDNN and NCCL are checked where their
// headers are found, and must be with -DSNN_REQUIRE_LIBRARY_HEADERS.
#if defined(SNN_REQUIRE_LIBRARY_HEADERS) && !(__has_include(<cublas_api.h>) && __has_include(<cudnn.h>) && __has_include(<nccl.h>))
#error "cublas_api.h, cudnn.h and nccl.h are not on the include path: make deps (scripts/fetch_library_headers.py)"
#endif
#include <cuda.h>
#include <nvrtc.h>
#include "snn_cuda.h"

#define CHECK(name, type) type check_##name = name;

CHECK(cuInit, snn_cuInit_t)
CHECK(cuDriverGetVersion, snn_cuDriverGetVersion_t)
CHECK(cuDeviceGetCount, snn_cuDeviceGetCount_t)
CHECK(cuDeviceGet, snn_cuDeviceGet_t)
CHECK(cuDeviceGetName, snn_cuDeviceGetName_t)
CHECK(cuDeviceTotalMem_v2, snn_cuDeviceTotalMem_v2_t)
CHECK(cuDeviceGetAttribute, snn_cuDeviceGetAttribute_t)
CHECK(cuGetErrorName, snn_cuGetErrorName_t)
CHECK(cuGetErrorString, snn_cuGetErrorString_t)
CHECK(cuDevicePrimaryCtxRetain, snn_cuDevicePrimaryCtxRetain_t)
CHECK(cuCtxSetCurrent, snn_cuCtxSetCurrent_t)
CHECK(cuStreamCreate, snn_cuStreamCreate_t)
CHECK(cuStreamSynchronize, snn_cuStreamSynchronize_t)
CHECK(cuMemAllocAsync, snn_cuMemAllocAsync_t)
CHECK(cuMemFreeAsync, snn_cuMemFreeAsync_t)
CHECK(cuMemcpyHtoDAsync_v2, snn_cuMemcpyHtoDAsync_v2_t)
CHECK(cuMemcpyDtoHAsync_v2, snn_cuMemcpyDtoHAsync_v2_t)
CHECK(cuMemcpyDtoDAsync_v2, snn_cuMemcpyDtoDAsync_v2_t)
CHECK(cuMemsetD8Async, snn_cuMemsetD8Async_t)
CHECK(cuMemsetD16Async, snn_cuMemsetD16Async_t)
CHECK(cuMemsetD32Async, snn_cuMemsetD32Async_t)
CHECK(cuDeviceGetDefaultMemPool, snn_cuDeviceGetDefaultMemPool_t)
CHECK(cuMemPoolSetAttribute, snn_cuMemPoolSetAttribute_t)
CHECK(cuMemAllocHost_v2, snn_cuMemAllocHost_v2_t)
CHECK(cuMemFreeHost, snn_cuMemFreeHost_t)
CHECK(cuEventCreate, snn_cuEventCreate_t)
CHECK(cuEventRecord, snn_cuEventRecord_t)
CHECK(cuEventSynchronize, snn_cuEventSynchronize_t)
CHECK(cuEventDestroy_v2, snn_cuEventDestroy_v2_t)
CHECK(cuModuleLoadData, snn_cuModuleLoadData_t)
CHECK(cuModuleGetFunction, snn_cuModuleGetFunction_t)
CHECK(cuLaunchKernel, snn_cuLaunchKernel_t)
CHECK(cuLaunchCooperativeKernel, snn_cuLaunchCooperativeKernel_t)
CHECK(cuOccupancyMaxActiveBlocksPerMultiprocessor, snn_cuOccupancyMaxActiveBlocksPerMultiprocessor_t)

CHECK(nvrtcVersion, snn_nvrtcVersion_t)
CHECK(nvrtcGetErrorString, snn_nvrtcGetErrorString_t)
CHECK(nvrtcCreateProgram, snn_nvrtcCreateProgram_t)
CHECK(nvrtcDestroyProgram, snn_nvrtcDestroyProgram_t)
CHECK(nvrtcCompileProgram, snn_nvrtcCompileProgram_t)
CHECK(nvrtcGetCUBINSize, snn_nvrtcGetCUBINSize_t)
CHECK(nvrtcGetCUBIN, snn_nvrtcGetCUBIN_t)
CHECK(nvrtcGetProgramLogSize, snn_nvrtcGetProgramLogSize_t)
CHECK(nvrtcGetProgramLog, snn_nvrtcGetProgramLog_t)

#if __has_include(<cublas_api.h>)
#include <cublas_api.h>
CHECK(cublasGetProperty, snn_cublasGetProperty_t)
CHECK(cublasCreate_v2, snn_cublasCreate_v2_t)
CHECK(cublasDestroy_v2, snn_cublasDestroy_v2_t)
CHECK(cublasSetStream_v2, snn_cublasSetStream_v2_t)
CHECK(cublasSetMathMode, snn_cublasSetMathMode_t)
CHECK(cublasSgemm_v2, snn_cublasSgemm_v2_t)
CHECK(cublasGemmEx, snn_cublasGemmEx_t)
#endif

#if __has_include(<cudnn.h>)
#include <stddef.h>
#include <cudnn.h>
CHECK(cudnnGetVersion, snn_cudnnGetVersion_t)
CHECK(cudnnGetErrorString, snn_cudnnGetErrorString_t)
CHECK(cudnnCreate, snn_cudnnCreate_t)
CHECK(cudnnDestroy, snn_cudnnDestroy_t)
CHECK(cudnnSetStream, snn_cudnnSetStream_t)
CHECK(cudnnCreateTensorDescriptor, snn_cudnnCreateTensorDescriptor_t)
CHECK(cudnnSetTensor4dDescriptor, snn_cudnnSetTensor4dDescriptor_t)
CHECK(cudnnDestroyTensorDescriptor, snn_cudnnDestroyTensorDescriptor_t)
CHECK(cudnnCreateFilterDescriptor, snn_cudnnCreateFilterDescriptor_t)
CHECK(cudnnSetFilter4dDescriptor, snn_cudnnSetFilter4dDescriptor_t)
CHECK(cudnnDestroyFilterDescriptor, snn_cudnnDestroyFilterDescriptor_t)
CHECK(cudnnCreateConvolutionDescriptor, snn_cudnnCreateConvolutionDescriptor_t)
CHECK(cudnnSetConvolution2dDescriptor, snn_cudnnSetConvolution2dDescriptor_t)
CHECK(cudnnSetConvolutionGroupCount, snn_cudnnSetConvolutionGroupCount_t)
CHECK(cudnnSetConvolutionMathType, snn_cudnnSetConvolutionMathType_t)
CHECK(cudnnDestroyConvolutionDescriptor, snn_cudnnDestroyConvolutionDescriptor_t)
CHECK(cudnnFindConvolutionForwardAlgorithmEx, snn_cudnnFindConvolutionForwardAlgorithmEx_t)
CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx, snn_cudnnFindConvolutionBackwardDataAlgorithmEx_t)
CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx, snn_cudnnFindConvolutionBackwardFilterAlgorithmEx_t)
CHECK(cudnnConvolutionForward, snn_cudnnConvolutionForward_t)
CHECK(cudnnConvolutionBackwardData, snn_cudnnConvolutionBackwardData_t)
CHECK(cudnnConvolutionBackwardFilter, snn_cudnnConvolutionBackwardFilter_t)
// One layout for the three algorithm results (Swift reads them through it): each field at the
// same offset with the same size.
#define SAME_FIELD(real, field)                                                                      \
    (offsetof(real, field) == offsetof(snn_cudnnConvolutionAlgoPerf_t, field) &&                    \
     sizeof(((real *)0)->field) == sizeof(((snn_cudnnConvolutionAlgoPerf_t *)0)->field))
#define SAME_LAYOUT(real)                                                                            \
    _Static_assert(sizeof(real) == sizeof(snn_cudnnConvolutionAlgoPerf_t) && SAME_FIELD(real, algo) && \
                   SAME_FIELD(real, status) && SAME_FIELD(real, time) && SAME_FIELD(real, memory) &&   \
                   SAME_FIELD(real, determinism) && SAME_FIELD(real, mathType),                       \
                   #real " has snn_cudnnConvolutionAlgoPerf_t's layout");
SAME_LAYOUT(cudnnConvolutionFwdAlgoPerf_t)
SAME_LAYOUT(cudnnConvolutionBwdDataAlgoPerf_t)
SAME_LAYOUT(cudnnConvolutionBwdFilterAlgoPerf_t)
_Static_assert(CUDNN_STATUS_SUCCESS == 0 && CUDNN_DATA_FLOAT == 0 && CUDNN_TENSOR_NCHW == 0 && CUDNN_CROSS_CORRELATION == 1 &&
               CUDNN_FMA_MATH == 3 && CUDNN_DETERMINISTIC == 1, "the cuDNN constants SwiftSNN uses");
_Static_assert((cudnnStatus_t)-1 > 0 && (cudnnConvolutionFwdAlgo_t)-1 > 0, "cuDNN's enumerations are unsigned int");
#endif

#if __has_include(<nccl.h>)
#include <nccl.h>
// The shim's typedefs with nccl.h's ncclUniqueId (an identical struct of another name, whose
// layout is compared below).
#define SNN_NCCL_UNIQUE_ID ncclUniqueId
#include "shim.h"
CHECK(ncclGetVersion, snn_ncclGetVersion_t)
CHECK(ncclGetUniqueId, snn_ncclGetUniqueId_t)
CHECK(ncclCommInitRank, snn_ncclCommInitRank_t)
CHECK(ncclCommDestroy, snn_ncclCommDestroy_t)
CHECK(ncclCommAbort, snn_ncclCommAbort_t)
CHECK(ncclCommGetAsyncError, snn_ncclCommGetAsyncError_t)
CHECK(ncclGetErrorString, snn_ncclGetErrorString_t)
CHECK(ncclAllReduce, snn_ncclAllReduce_t)
CHECK(ncclBroadcast, snn_ncclBroadcast_t)
_Static_assert(sizeof(ncclUniqueId) == sizeof(snn_ncclUniqueId) && NCCL_UNIQUE_ID_BYTES == SNN_NCCL_UNIQUE_ID_BYTES,
               "ncclUniqueId has snn_ncclUniqueId's layout");
_Static_assert(ncclSuccess == 0 && ncclUint8 == 1 && ncclFloat32 == 7 && ncclFloat64 == 8 && ncclSum == 0,
               "the NCCL constants SwiftSNN uses");
_Static_assert((ncclResult_t)-1 > 0 && (ncclDataType_t)-1 > 0 && (ncclRedOp_t)-1 > 0, "NCCL's enumerations are unsigned int");
#endif

// The enumerations' type: unsigned int, as the typedefs above assume.
_Static_assert(sizeof(CUresult) == sizeof(snn_CUresult) && (CUresult)-1 > 0, "CUresult is unsigned int");
_Static_assert(sizeof(nvrtcResult) == sizeof(snn_nvrtcResult) && (nvrtcResult)-1 > 0, "nvrtcResult is unsigned int");
