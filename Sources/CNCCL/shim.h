// The one type of NCCL's C interface that Swift cannot spell by itself: `ncclUniqueId`, a
// 128-byte struct that `ncclCommInitRank` takes *by value*. A struct this large is passed in
// memory on x86-64 (copied onto the stack) and by reference to a copy on AArch64, so a Swift
// tuple or pointer cannot stand in for it; declaring it here lets `@convention(c)` types use it.
//
// Written from NCCL's public nccl.h (2.x; the layout has not changed since NCCL 2.0):
//   #define NCCL_UNIQUE_ID_BYTES 128
//   typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
// Nothing is linked: NCCL is opened at run time with dlopen (SNNDistributed/NCCLLibrary.swift).
#ifndef SNN_CNCCL_SHIM_H
#define SNN_CNCCL_SHIM_H

#define SNN_NCCL_UNIQUE_ID_BYTES 128

typedef struct {
    char internal[SNN_NCCL_UNIQUE_ID_BYTES];
} snn_ncclUniqueId;

#endif
