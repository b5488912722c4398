// libhdf5's C API (Debian: libhdf5-dev, the serial build under /usr/include/hdf5/serial).
// The type and property identifiers are macros over globals that H5open() initialises; Swift
// cannot import those macros, so each one gets an inline function here.
#include <hdf5/serial/hdf5.h>

static inline hid_t snn_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t snn_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t snn_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t snn_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t snn_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t snn_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline unsigned snn_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned snn_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned snn_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline size_t snn_h5t_variable(void) { return H5T_VARIABLE; }
