/*
 * allreduce_bench.c: MPI_Allreduce timed the way `snn bench allreduce` times it, to compare the
 * two on one machine (any difference is SwiftSNN's overhead around the same MPI call).
 *
 *   mpicc -O2 -o allreduce_bench scripts/allreduce_bench.c
 *   mpirun -np 2 ./allreduce_bench [--sizes 1e6,5e7] [--iterations 20] [--warmup 2]
 *
 * For each size in bytes (float32 values, so a multiple of 4): --warmup untimed in-place sum
 * all-reduces of a zeroed buffer, then --iterations timed ones, each after a barrier; rank 0
 * prints the median of its times, the algorithm bandwidth bytes/time and the bus bandwidth
 * 2(n-1)/n * bytes/time (nccl-tests' definitions; GB = 1e9 bytes).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fail(int rank, const char *message, const char *value) {
    if (rank == 0) fprintf(stderr, "allreduce_bench: %s%s\n", message, value);
    MPI_Finalize();
    exit(2);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);

    const char *sizes = "1e6,5e7";
    int iterations = 20, warmup = 2;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--sizes") == 0) sizes = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--iterations") == 0) iterations = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--warmup") == 0) warmup = atoi(argv[++i]);
        else fail(rank, "usage: allreduce_bench [--sizes 1e6,5e7] [--iterations 20] [--warmup 2]; got ", argv[i]);
    }
    if (iterations < 1 || warmup < 0) fail(rank, "--iterations must be at least 1 and --warmup at least 0", "");

    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length;
    MPI_Get_library_version(version, &length);
    version[strcspn(version, ",\n")] = '\0';
    if (rank == 0) {
        printf("all-reduce: sum of float32 in place, %d rank%s, MPI (%s) from C; median of %d after %d warm-up\n", n,
               n == 1 ? "" : "s", version, iterations, warmup);
        printf("%12s%12s%12s%14s%14s\n", "bytes", "elements", "time (us)", "algbw (GB/s)", "busbw (GB/s)");
    }

    double *times = malloc(sizeof(double) * iterations);
    char *list = strdup(sizes);
    for (char *item = strtok(list, ","); item; item = strtok(NULL, ",")) {
        char *end;
        double value = strtod(item, &end);
        long bytes = (long)value;
        if (*end != '\0' || value < 4 || (double)bytes != value || bytes % 4 != 0)
            fail(rank, "--sizes takes byte counts that are multiples of 4, such as 4096,1e6; got ", item);
        long elements = bytes / 4;
        float *buffer = calloc(elements, sizeof(float));
        if (!buffer || elements > 2147483647L) fail(rank, "cannot allocate or pass to MPI in one call: ", item);
        for (int call = 0; call < warmup + iterations; call++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double start = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buffer, (int)elements, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double seconds = MPI_Wtime() - start;
            if (call >= warmup) times[call - warmup] = seconds;
        }
        free(buffer);
        qsort(times, iterations, sizeof(double), compare);
        double median = iterations % 2 ? times[iterations / 2] : (times[iterations / 2 - 1] + times[iterations / 2]) / 2;
        double algbw = (double)bytes / median / 1e9, busbw = algbw * 2.0 * (n - 1) / n;
        if (rank == 0) printf("%12ld%12ld%12.1f%14.3f%14.3f\n", bytes, elements, median * 1e6, algbw, busbw);
    }
    free(list);
    free(times);
    MPI_Finalize();
    return 0;
}
