/*
 * edgepack's instruction counter: a QEMU TCG plugin (plugin API version 1, QEMU 7.2) that
 * counts the AArch64 guest instructions a program executes, by encoding class (bits 28..25):
 * SIMD/FP data processing (x111), loads and stores (x1x0), branches/exceptions/system
 * (101x), and other (integer data processing). Two sub-classes are counted on top: the
 * int8 dot-product instructions (SDOT/UDOT) and half-precision vector arithmetic, which show
 * which kernels a runtime chose on the emulated CPU.
 *
 * Built by `edgepack toolchain install emulator` with the system compiler; no QEMU header is
 * needed (the few API functions used are declared below):
 *     gcc -shared -fPIC -O2 -o insn_count.so insn_count.c
 *     qemu-aarch64 -cpu cortex-a76 -plugin ./insn_count.so,out=counts.json ...
 *
 * Windows: the guest brackets what it wants counted with lseek(-1, BEGIN, 0) ... lseek(-1,
 * END, 0) (a failing syscall with no other effect); each pair is one window in the output.
 * Counters are added per translated block, inline (cheap, not atomic): count with one
 * inference thread, as edgepack does.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*syscall_cb)(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                           uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                           uint64_t a7, uint64_t a8);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, syscall_cb cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { TOTAL, SIMD, LDST, BRANCH, OTHER, DOT, FP16, N };
static const char *const names[N] = {"total", "simd", "ldst", "branch", "other", "dot", "fp16"};
static uint64_t counts[N];
#define BEGIN 0x45505801ull
#define END 0x45505802ull
#define LSEEK 62 /* aarch64 syscall number */
#define MAX_WINDOWS 64
static uint64_t opened[N], windows[MAX_WINDOWS][N];
static int n_windows;
static char out_path[4096];

static int op_class(uint32_t w)
{
    uint32_t op0 = (w >> 25) & 0xF;
    if ((op0 & 0x7) == 0x7) return SIMD;
    if ((op0 & 0x5) == 0x4) return LDST;
    if ((op0 & 0xE) == 0xA) return BRANCH;
    return OTHER;
}

static int sub_class(uint32_t w)
{
    if ((w & 0x9FE0FC00u) == 0x0E809400u || (w & 0x9FC0F400u) == 0x0F80E000u)
        return DOT; /* SDOT/UDOT, vector and by element */
    if ((w & 0x9F60C400u) == 0x0E400400u) return FP16; /* Advanced SIMD three-same FP16 */
    return -1;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t add[N] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, qemu_plugin_insn_data(qemu_plugin_tb_get_insn(tb, i)), sizeof w);
        add[TOTAL]++;
        add[op_class(w)]++;
        int sub = sub_class(w);
        if (sub >= 0) add[sub]++;
    }
    for (int k = 0; k < N; k++)
        if (add[k]) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                             &counts[k], add[k]);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != LSEEK || a1 != (uint64_t)-1) return;
    if (a2 == BEGIN) memcpy(opened, counts, sizeof counts);
    if (a2 == END && n_windows < MAX_WINDOWS) {
        for (int k = 0; k < N; k++) windows[n_windows][k] = counts[k] - opened[k];
        n_windows++;
    }
}

static void write_row(FILE *f, const uint64_t *row)
{
    fputc('{', f);
    for (int k = 0; k < N; k++)
        fprintf(f, "%s\"%s\": %llu", k ? ", " : "", names[k], (unsigned long long)row[k]);
    fputc('}', f);
}

static void at_exit_cb(qemu_plugin_id_t id, void *userdata)
{
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f) return;
    fputs("{\"process\": ", f);
    write_row(f, counts);
    fputs(", \"windows\": [", f);
    for (int i = 0; i < n_windows; i++) {
        if (i) fputs(", ", f);
        write_row(f, windows[i]);
    }
    fputs("]}\n", f);
    if (f != stderr) fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit_cb, NULL);
    return 0;
}
