// A stand-alone probe of the spike-convolution loop of Sources/CSNNKernels/spike_conv.c on the
// `snn bench ops` layer (N 64, 128 -> 128 channels, 16x16, 3x3, padding 1), with random binary
// inputs of a given density, packing included. It prints the dense-equivalent GFLOP/s (the
// dense product's 2·N·O·C·9·H·W operations over the time) to compare with `snn bench ops`'s
// conv2d_fwd_gflops, and checks 200 outputs against a plain sum.
//
//   gcc -O3 -mavx2 -fopenmp scripts/spike_conv_probe.c -o /tmp/spike_conv_probe -lm
//   for d in 0.05 0.1 0.15 0.2 0.3; do OMP_NUM_THREADS=2 /tmp/spike_conv_probe $d; done
//
// The library's kernel differs only in where the output goes (NCHW rows, not NHWC) and in
// running on SwiftSNN's thread pool.
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <omp.h>
// gather-sparse conv forward: input binary NCHW -> bits [n][y][x][C/64]; weights [ky][kx][c][O]; out NHWC
enum { N=64, C=128, O=128, H=16, W=16, K=3 };
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  double rho = argc>1?atof(argv[1]):0.15;
  float *x = malloc(sizeof(float)*N*C*H*W); srand(1);
  for(long i=0;i<(long)N*C*H*W;i++) x[i] = (rand()/(double)RAND_MAX) < rho;
  float *w = malloc(sizeof(float)*O*C*K*K); for(long i=0;i<(long)O*C*K*K;i++) w[i]=rand()/(double)RAND_MAX-0.5;
  float *wt = aligned_alloc(64,sizeof(float)*K*K*C*O);
  for(int o=0;o<O;o++)for(int c=0;c<C;c++)for(int ky=0;ky<K;ky++)for(int kx=0;kx<K;kx++) wt[((ky*K+kx)*C+c)*O+o]=w[((o*C+c)*K+ky)*K+kx];
  uint64_t *bits = aligned_alloc(64, sizeof(uint64_t)*N*H*W*(C/64));
  float *out = aligned_alloc(64,sizeof(float)*N*H*W*O);
  double best=1e9;
  for(int rep=0;rep<7;rep++){
    double t0=now();
    // pack
    #pragma omp parallel for
    for(int n=0;n<N;n++) for(int y=0;y<H;y++) for(int xx=0;xx<W;xx++){
      uint64_t *b = bits + ((n*H+y)*W+xx)*(C/64);
      for(int q=0;q<C/64;q++){ uint64_t m=0; for(int j=0;j<64;j++){ if(x[((long)(n*C+q*64+j)*H+y)*W+xx]!=0) m|=1ull<<j;} b[q]=m; }
    }
    double tp=now()-t0; if(rep==6) printf("pack %.2f ms  ", tp*1e3);
    #pragma omp parallel for collapse(2)
    for(int n=0;n<N;n++) for(int y=0;y<H;y++) for(int xx=0;xx<W;xx++){
      for(int ob=0; ob<O; ob+=64){
        __m256 a0=_mm256_setzero_ps(),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0,a6=a0,a7=a0;
        for(int ky=0;ky<K;ky++){ int iy=y+ky-1; if(iy<0||iy>=H) continue;
          for(int kx=0;kx<K;kx++){ int ix=xx+kx-1; if(ix<0||ix>=W) continue;
            const uint64_t *b = bits + ((n*H+iy)*W+ix)*(C/64);
            const float *wk = wt + (ky*K+kx)*C*O + ob;
            for(int q=0;q<C/64;q++){ uint64_t m=b[q];
              while(m){ int c = q*64+__builtin_ctzll(m); m&=m-1; const float *r = wk + c*O;
                a0=_mm256_add_ps(a0,_mm256_load_ps(r)); a1=_mm256_add_ps(a1,_mm256_load_ps(r+8));
                a2=_mm256_add_ps(a2,_mm256_load_ps(r+16)); a3=_mm256_add_ps(a3,_mm256_load_ps(r+24));
                a4=_mm256_add_ps(a4,_mm256_load_ps(r+32)); a5=_mm256_add_ps(a5,_mm256_load_ps(r+40));
                a6=_mm256_add_ps(a6,_mm256_load_ps(r+48)); a7=_mm256_add_ps(a7,_mm256_load_ps(r+56)); } } } }
        float *d = out + ((long)(n*H+y)*W+xx)*O + ob;
        _mm256_store_ps(d,a0);_mm256_store_ps(d+8,a1);_mm256_store_ps(d+16,a2);_mm256_store_ps(d+24,a3);
        _mm256_store_ps(d+32,a4);_mm256_store_ps(d+40,a5);_mm256_store_ps(d+48,a6);_mm256_store_ps(d+56,a7);
      }
    }
    double t=now()-t0; if(t<best)best=t;
  }
  // check a few outputs vs naive
  double maxerr=0;
  for(int s=0;s<200;s++){ int n=rand()%N,o=rand()%O,y=rand()%H,xx=rand()%W; double acc=0;
    for(int c=0;c<C;c++)for(int ky=0;ky<K;ky++)for(int kx=0;kx<K;kx++){int iy=y+ky-1,ix=xx+kx-1; if(iy<0||iy>=H||ix<0||ix>=W)continue; acc+=x[((long)(n*C+c)*H+iy)*W+ix]*w[((o*C+c)*K+ky)*K+kx];}
    double e=fabs(acc-out[((long)(n*H+y)*W+xx)*O+o]); if(e>maxerr)maxerr=e; }
  double flops=2.0*N*O*H*W*C*K*K;
  printf("rho %.2f: %.2f ms, %.1f dense-equivalent GFLOP/s, max err %.2e\n", rho, best*1e3, flops/best/1e9, maxerr);
}
