// libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev): JPEG decoding with error codes
// instead of libjpeg's setjmp/longjmp.
#include <turbojpeg.h>
