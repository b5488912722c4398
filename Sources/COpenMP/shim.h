// The libgomp entry points SwiftSNN uses to run its own kernels on the OpenMP thread
// pool that oneDNN and OpenBLAS already use (one pool, no competing spinning workers).
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);
/// Waits for every thread of the current team (`#pragma omp barrier`); returns at once outside a team.
void GOMP_barrier(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
int omp_in_parallel(void);
void omp_set_num_threads(int);
