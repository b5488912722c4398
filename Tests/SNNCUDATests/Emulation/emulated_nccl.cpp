// An NCCL (libnccl.so.2) for tests of data-parallel training on the emulated GPU
// (emulated_driver.cpp), on a machine without GPUs: the ranks are processes on this machine,
// buffers are the emulated GPU's (device addresses, translated back by device_addresses.h), and
// each collective goes through files in a folder rank 0 makes, whose path is the unique id.
//
// Collective number k of rank r writes its bytes to `<folder>/<k>.<r>` (a temporary file
// renamed into place) and waits until every rank's file of collective k is there; an all-reduce
// then sums them in rank order, a broadcast copies the root's. A rank that finds every file of
// collective k has seen every rank start k, so all are done reading k - 1 and it may remove its
// own file of k - 1. A rank that does not come within 60 s is an error (ncclSystemError).
//
// At exit each process removes its last file and then the folder, if it is the last to go (the
// ranks' last collectives are behind them by then: training ends with MPI collectives).
//
// It checks what a real NCCL relies on, through the emulated driver's hooks (which SwiftSNN loads
// first, RTLD_GLOBAL): a CUDA context current on the thread that makes the communicator (NCCL
// would otherwise pick a GPU of its own), collectives queued on the stream cuStreamCreate made,
// and buffers inside live device allocations. What breaks one is ncclInvalidUsage, not a crash.
//
// With SNN_EMULATED_NCCL_TRACE set, every collective says so on stderr, so a test can tell that
// the collectives went through NCCL and not through host memory.
//
// Written from NCCL's public nccl.h (2.x): the signatures below are NCCL's, with ncclComm_t an
// opaque pointer and the enums ints.
#include "device_addresses.h"

#include <chrono>
#include <dlfcn.h>
#include <initializer_list>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

struct ncclUniqueId {
    char internal[128];
};

struct ncclComm {
    std::string folder;
    int ranks, rank;
    long long collectives = 0;
};

enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };
enum { ncclUint8 = 1, ncclFloat32 = 7, ncclFloat64 = 8 };

// The communicators this process made, for the clean-up at exit (never freed: static objects
// are destroyed before the clean-up runs).
static std::vector<ncclComm *> &communicators() {
    static auto *made = new std::vector<ncclComm *>;
    return *made;
}

// The folders this process made as unique ids, removed at exit if empty (an id no communicator used).
static std::vector<std::string> &folders() {
    static auto *made = new std::vector<std::string>;
    return *made;
}

static bool tracing() { return std::getenv("SNN_EMULATED_NCCL_TRACE") != nullptr; }

static std::string file(const ncclComm *comm, long long k, int rank) {
    return comm->folder + "/" + std::to_string(k) + "." + std::to_string(rank);
}

static bool exists(const std::string &path) {
    struct stat s;
    return stat(path.c_str(), &s) == 0;
}

static bool write_file(const std::string &path, const void *bytes, size_t n) {
    std::string temporary = path + ".tmp";
    FILE *f = std::fopen(temporary.c_str(), "wb");
    if (!f) return false;
    bool written = (n == 0 || std::fwrite(bytes, 1, n, f) == n) && std::fclose(f) == 0;
    return written && std::rename(temporary.c_str(), path.c_str()) == 0;
}

static bool read_file(const std::string &path, void *bytes, size_t n) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    bool read = n == 0 || std::fread(bytes, 1, n, f) == n;
    std::fclose(f);
    return read;
}

// Waits until every rank's file of collective k exists.
static bool wait_for_all(const ncclComm *comm, long long k) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int r = 0; r < comm->ranks; r++) {
        while (!exists(file(comm, k, r))) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "emulated NCCL: rank %d waited 60 s for rank %d in collective %lld\n", comm->rank, r, k);
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    return true;
}

// Writes this rank's bytes for the next collective, waits for the others', and removes this
// rank's file of the collective before.
static bool exchange(ncclComm *comm, const void *bytes, size_t n, long long *k) {
    *k = comm->collectives++;
    if (!write_file(file(comm, *k, comm->rank), bytes, n) || !wait_for_all(comm, *k)) return false;
    if (*k > 0) std::remove(file(comm, *k - 1, comm->rank).c_str());
    return true;
}

// The emulated driver's hook `name`, or null with a message when the driver is not the emulated one.
template <class F> static F driver_hook(const char *name) {
    F hook = (F)dlsym(RTLD_DEFAULT, name);
    if (!hook) std::fprintf(stderr, "emulated NCCL: %s not found: load the emulated CUDA driver first\n", name);
    return hook;
}

// Whether `stream` is the driver's and each of the `count` device buffers lies inside a live allocation.
static bool valid(const void *stream, std::initializer_list<std::pair<const void *, size_t>> buffers) {
    auto is_stream = driver_hook<int (*)(const void *)>("snn_emulated_is_stream");
    auto in_memory = driver_hook<int (*)(unsigned long long, size_t)>("snn_emulated_is_device_range");
    if (!is_stream || !in_memory) return false;
    if (!is_stream(stream)) {
        std::fprintf(stderr, "emulated NCCL: a collective on %p, not the stream cuStreamCreate made\n", stream);
        return false;
    }
    for (auto [buffer, bytes] : buffers) {
        if (!in_memory((unsigned long long)(std::uintptr_t)buffer, bytes)) {
            std::fprintf(stderr, "emulated NCCL: %zu bytes at %p are not inside a live device allocation\n", bytes, buffer);
            return false;
        }
    }
    return true;
}

static size_t element_size(int datatype) { return datatype == ncclFloat64 ? 8 : datatype == ncclFloat32 ? 4 : 1; }

extern "C" {

int ncclGetVersion(int *version) {
    *version = 22105;
    return ncclSuccess;
}

const char *ncclGetErrorString(int result) {
    return result == ncclSystemError ? "unhandled system error (emulated NCCL)"
         : result == ncclInvalidArgument ? "invalid argument (emulated NCCL)"
         : result == ncclInvalidUsage ? "invalid usage (emulated NCCL; see the line before)" : "emulated NCCL error";
}

int ncclGetUniqueId(ncclUniqueId *id) {
    const char *temporary = std::getenv("TMPDIR");
    std::string pattern = std::string(temporary && *temporary ? temporary : "/tmp") + "/snn-emulated-nccl-XXXXXX";
    if (pattern.size() >= sizeof id->internal) return ncclSystemError;
    std::vector<char> path(pattern.begin(), pattern.end());
    path.push_back(0);
    if (!mkdtemp(path.data())) return ncclSystemError;
    std::memset(id->internal, 0, sizeof id->internal);
    std::memcpy(id->internal, path.data(), path.size());
    folders().push_back(path.data());
    return ncclSuccess;
}

int ncclCommInitRank(ncclComm **comm, int ranks, ncclUniqueId id, int rank) {
    if (!comm || ranks < 1 || rank < 0 || rank >= ranks || id.internal[0] != '/') return ncclInvalidArgument;
    auto has_context = driver_hook<int (*)()>("snn_emulated_has_context");
    if (!has_context || !has_context()) {
        if (has_context) std::fprintf(stderr, "emulated NCCL: ncclCommInitRank without a current CUDA context\n");
        return ncclInvalidUsage;
    }
    auto *c = new ncclComm{std::string(id.internal, strnlen(id.internal, sizeof id.internal)), ranks, rank};
    long long k;
    if (!exchange(c, nullptr, 0, &k)) {
        delete c;
        return ncclSystemError;
    }
    *comm = c;
    communicators().push_back(c);
    return ncclSuccess;
}

int ncclAllReduce(const void *send, void *receive, size_t count, int datatype, int op, ncclComm *comm, void *stream) {
    if (!comm || op != 0 || (datatype != ncclFloat32 && datatype != ncclFloat64)) return ncclInvalidArgument;
    size_t bytes = count * element_size(datatype);
    if (!valid(stream, {{send, bytes}, {receive, bytes}})) return ncclInvalidUsage;
    snn_emulated_wait_for_stream();
    const char *from = snn_host_pointer((const char *)send);
    char *to = snn_host_pointer((char *)receive);
    long long k;
    if (!exchange(comm, from, bytes, &k)) return ncclSystemError;
    std::vector<char> sum(bytes), part(bytes);
    for (int r = 0; r < comm->ranks; r++) {
        if (!read_file(file(comm, k, r), r == 0 ? sum.data() : part.data(), bytes)) return ncclSystemError;
        if (r == 0) continue;
        for (size_t i = 0; i < count; i++) {
            if (datatype == ncclFloat32) ((float *)sum.data())[i] += ((const float *)part.data())[i];
            else ((double *)sum.data())[i] += ((const double *)part.data())[i];
        }
    }
    std::memcpy(to, sum.data(), bytes);
    if (tracing()) std::fprintf(stderr, "emulated NCCL: rank %d summed %zu values over %d ranks\n", comm->rank, count, comm->ranks);
    return ncclSuccess;
}

int ncclBroadcast(const void *send, void *receive, size_t count, int datatype, int root, ncclComm *comm, void *stream) {
    if (!comm || root < 0 || root >= comm->ranks) return ncclInvalidArgument;
    size_t bytes = count * element_size(datatype);
    if (!valid(stream, {{receive, bytes}}) || (comm->rank == root && !valid(stream, {{send, bytes}}))) return ncclInvalidUsage;
    snn_emulated_wait_for_stream();
    long long k;
    if (!exchange(comm, comm->rank == root ? snn_host_pointer((const char *)send) : nullptr, comm->rank == root ? bytes : 0, &k))
        return ncclSystemError;
    if (!read_file(file(comm, k, root), snn_host_pointer((char *)receive), bytes)) return ncclSystemError;
    if (tracing()) std::fprintf(stderr, "emulated NCCL: rank %d received %zu bytes from rank %d\n", comm->rank, bytes, root);
    return ncclSuccess;
}

int ncclCommGetAsyncError(ncclComm *, int *result) {
    *result = ncclSuccess;
    return ncclSuccess;
}

// The communicator stays in `communicators()`, whose files the clean-up at exit removes (other
// ranks may still be reading this rank's last file now).
int ncclCommDestroy(ncclComm *) { return ncclSuccess; }

int ncclCommAbort(ncclComm *comm) { return ncclCommDestroy(comm); }

}   // extern "C"

__attribute__((destructor)) static void remove_files() {
    for (ncclComm *c : communicators()) {
        if (c->collectives > 0) std::remove(file(c, c->collectives - 1, c->rank).c_str());
        rmdir(c->folder.c_str());   // fails while another rank's file is there: that rank removes it
    }
    for (const std::string &folder : folders()) rmdir(folder.c_str());
}
