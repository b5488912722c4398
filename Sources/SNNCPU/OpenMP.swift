import COpenMP

/// Runs Swift kernels on libgomp's thread pool, the one oneDNN and OpenBLAS use.
///
/// With a second pool (Dispatch's), OpenMP's workers keep spinning for a while after each
/// library call and compete with the Swift workers for the same cores; on this 2-core machine
/// that halved the throughput of a training step. One pool avoids it.
enum OpenMP {
    /// The threads a parallel region uses.
    static var maxThreads: Int { Int(omp_get_max_threads()) }

    /// Calls `body(thread, threads)` once on each thread of a parallel region; runs inline
    /// (thread 0 of 1) when already inside one.
    static func parallel(_ body: (_ thread: Int, _ threads: Int) -> Void) {
        if omp_in_parallel() != 0 || maxThreads <= 1 {
            body(0, 1)
            return
        }
        withoutActuallyEscaping(body) { body in
            var context = body
            withUnsafeMutablePointer(to: &context) { pointer in
                GOMP_parallel({ raw in
                    guard let raw else { return }
                    let body = raw.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee
                    body(Int(omp_get_thread_num()), Int(omp_get_num_threads()))
                }, UnsafeMutableRawPointer(pointer), 0, 0)
            }
        }
    }
}
