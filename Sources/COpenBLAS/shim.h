// OpenBLAS (OpenMP flavour, sharing libgomp's pool with oneDNN).
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
