// NCCL's C interface as SwiftSNN calls it, written from NCCL's public nccl.h (2.x): the
// functions' types, and `ncclUniqueId`, a 128-byte struct that `ncclCommInitRank` takes *by
// value* (passed in memory on x86-64, by reference to a copy on AArch64), which only a C struct
// type can express for `@convention(c)`. Nothing is linked: NCCL is opened at run time with
// dlopen (SNNDistributed/NCCLLibrary.swift).
//
// Tests/SNNCUDATests/Prototypes/check_prototypes.c assigns each real function to its type here
// against the real nccl.h, so a prototype that differs fails to compile. NCCL's enums
// (ncclResult_t, ncclDataType_t, ncclRedOp_t) have no negative values, so their C type is
// `unsigned int`; `struct ncclComm` and `struct CUstream_st` are nccl.h's own tags
// (ncclComm_t, cudaStream_t).
#ifndef SNN_CNCCL_SHIM_H
#define SNN_CNCCL_SHIM_H

#include <stddef.h>

#define SNN_NCCL_UNIQUE_ID_BYTES 128

typedef struct {
    char internal[SNN_NCCL_UNIQUE_ID_BYTES];
} snn_ncclUniqueId;

// The check against nccl.h defines this as nccl.h's ncclUniqueId, a distinct but identical type.
#ifndef SNN_NCCL_UNIQUE_ID
#define SNN_NCCL_UNIQUE_ID snn_ncclUniqueId
#endif

struct ncclComm;
struct CUstream_st;

typedef unsigned int snn_ncclResult_t;   // ncclSuccess = 0

typedef snn_ncclResult_t (*snn_ncclGetVersion_t)(int *version);
typedef snn_ncclResult_t (*snn_ncclGetUniqueId_t)(SNN_NCCL_UNIQUE_ID *uniqueId);
typedef snn_ncclResult_t (*snn_ncclCommInitRank_t)(struct ncclComm **comm, int nranks, SNN_NCCL_UNIQUE_ID commId, int rank);
typedef snn_ncclResult_t (*snn_ncclCommDestroy_t)(struct ncclComm *comm);
typedef snn_ncclResult_t (*snn_ncclCommAbort_t)(struct ncclComm *comm);
typedef snn_ncclResult_t (*snn_ncclCommGetAsyncError_t)(struct ncclComm *comm, snn_ncclResult_t *asyncError);
typedef const char *(*snn_ncclGetErrorString_t)(snn_ncclResult_t result);
// datatype: ncclDataType_t (ncclUint8 = 1, ncclFloat32 = 7, ncclFloat64 = 8); op: ncclRedOp_t (ncclSum = 0).
typedef snn_ncclResult_t (*snn_ncclAllReduce_t)(const void *sendbuff, void *recvbuff, size_t count, unsigned int datatype,
                                                unsigned int op, struct ncclComm *comm, struct CUstream_st *stream);
typedef snn_ncclResult_t (*snn_ncclBroadcast_t)(const void *sendbuff, void *recvbuff, size_t count, unsigned int datatype,
                                                int root, struct ncclComm *comm, struct CUstream_st *stream);

#endif
