// Compiled whole-model testbench for the generated accelerator (sim.fast).
//
// The same cycle-level protocol as the cocotb testbench sim/tb_accelerator.py, in C++ so
// that no Python runs per cycle:
//   reset: rst high for 2 rising edges;
//   per sample: start high for one edge, then the input stream (valid held high, one
//   element per edge while ready), wait for done, read run_cycles, then one edge per
//   layer with layer_sel = i to read layer_count, then one more edge;
//   the output stream is collected on every edge (ready high, or low with probability
//   --backpressure from a seeded generator);
//   with HWGEN_EXT the external-memory port is served with the schedule of docs/timing.md
//   (sim.cocotb_lib.ExternalMemoryModel): word i of a read burst requested at edge t
//   transfers at edge t + latency + ceil((i + 1) / bandwidth), never before the edge after
//   the previous word; word i of a write burst (req.write, --write OFF) is taken at edge
//   t + ceil((i + 1) / bandwidth) or later, its data written where its mask bits are set
//   (wdata payload: data in bits [0, W), mask in [W, 2W), --word-bits W); request ready is
//   high while no burst is in flight. With --input-ext ADDR:APW:BITS each sample is written
//   into the memory from word ADDR (APW elements of BITS bits per word, element l of a word
//   in bits [l*BITS, ...)) before its start, and nothing is streamed in (a spilled program).
//
// Verilator spells "__" in a port name "___05F" (inp__valid -> inp___05Fvalid).
//
// Usage: harness SAMPLES RESULTS --outputs N --layers N --out-bits N --max-cycles N
//          [--ext MEMFILE --latency N --bandwidth X --addr OFF:WIDTH --words OFF:WIDTH
//           --write OFF --word-bits W [--input-ext ADDR:APW:BITS]]
//          [--backpressure P] [--seed N] [--progress FILE] [--waves FILE] [+verilator+...]
// SAMPLES: little-endian int64: count, elements per sample, then the elements.
// RESULTS: text, one line per sample: "run_cycles layer_0 .. layer_{L-1} : out_0 .. out_{N-1}
//          @ edge_0 .. edge_{N-1}" (the rising edge, counted from the first, each output
//          transferred at),
//          then "total_cycles T", "loop_seconds S" and "ext_words READ WRITTEN" (words the
//          external memory served and took over all samples; 0 0 without one).
// Errors (exit 3) are one line on stderr naming the sample and the cycle.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "verilated.h"
#include HWGEN_TOP_HEADER
#ifdef HWGEN_WAVES
#include "verilated_fst_c.h"
#endif

namespace {

// ---- port access for every Verilator port type (CData .. QData, VlWide) ----
template <typename T> void to_words(const T& v, std::vector<uint32_t>& w) {
    uint64_t x = static_cast<uint64_t>(v);
    w.assign({static_cast<uint32_t>(x), static_cast<uint32_t>(x >> 32)});
}
template <std::size_t N> void to_words(const VlWide<N>& v, std::vector<uint32_t>& w) {
    w.assign(v.data(), v.data() + N);
}
template <typename T> uint64_t field(const T& v, int off, int width) {
    std::vector<uint32_t> w;
    to_words(v, w);
    uint64_t out = 0;
    for (int b = 0; b < width; ++b) {
        int bit = off + b;
        if (bit / 32 < static_cast<int>(w.size()) && ((w[bit / 32] >> (bit % 32)) & 1u))
            out |= uint64_t{1} << b;
    }
    return out;
}
template <typename T> uint64_t read_port(const T& v) { return field(v, 0, 64); }
// bits [off, off + width) of a port of any width as 32-bit words, least significant first
template <typename T> std::vector<uint32_t> read_bits(const T& v, int off, int width) {
    std::vector<uint32_t> w, out(static_cast<size_t>((width + 31) / 32), 0u);
    to_words(v, w);
    for (int b = 0; b < width; ++b) {
        int bit = off + b;
        if (bit / 32 < static_cast<int>(w.size()) && ((w[bit / 32] >> (bit % 32)) & 1u))
            out[b / 32] |= 1u << (b % 32);
    }
    return out;
}
template <typename T> void write_port(T& p, uint64_t v) { p = static_cast<T>(v); }
template <std::size_t N> void write_port(VlWide<N>& p, uint64_t v) {
    for (std::size_t i = 0; i < N; ++i) p[i] = 0;
    p[0] = static_cast<uint32_t>(v);
    if (N > 1) p[1] = static_cast<uint32_t>(v >> 32);
}
// a memory word of any width: 32-bit words, least significant first
using Word = std::vector<uint32_t>;
template <typename T> void write_word(T& p, const Word& w) {
    write_port(p, w.empty() ? 0 : (w[0] | (w.size() > 1 ? static_cast<uint64_t>(w[1]) << 32 : 0)));
}
template <std::size_t N> void write_word(VlWide<N>& p, const Word& w) {
    for (std::size_t i = 0; i < N; ++i) p[i] = i < w.size() ? w[i] : 0;
}
Word parse_hex(const std::string& s) {
    Word w;
    for (std::size_t end = s.size(); end > 0;) {
        std::size_t begin = end >= 8 ? end - 8 : 0;
        w.push_back(static_cast<uint32_t>(std::strtoul(s.substr(begin, end - begin).c_str(), nullptr, 16)));
        end = begin;
    }
    return w;
}

[[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    std::exit(3);
}

struct Options {
    std::string samples, results, ext_file, progress, waves;
    long outputs = -1, layers = -1, out_bits = -1, max_cycles = -1, latency = 0;
    double bandwidth = 1.0, backpressure = 0.0;
    int addr_off = 0, addr_width = 0, words_off = 0, words_width = 0, write_off = -1, word_bits = 0;
    long input_addr = -1, input_apw = 0, input_bits = 0;
    unsigned long seed = 0;
};

void parse_field(const char* s, int& off, int& width) {
    if (std::sscanf(s, "%d:%d", &off, &width) != 2 || off < 0 || width <= 0 || width > 64)
        fail(std::string("bad field ") + s + " (expected OFFSET:WIDTH, width 1..64)");
}

Options parse(int argc, char** argv) {
    Options o;
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("+", 0) == 0) continue;  // +verilator+... plusargs
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) fail("option " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--outputs") o.outputs = std::atol(next());
        else if (a == "--layers") o.layers = std::atol(next());
        else if (a == "--out-bits") o.out_bits = std::atol(next());
        else if (a == "--max-cycles") o.max_cycles = std::atol(next());
        else if (a == "--ext") o.ext_file = next();
        else if (a == "--latency") o.latency = std::atol(next());
        else if (a == "--bandwidth") o.bandwidth = std::strtod(next(), nullptr);
        else if (a == "--addr") parse_field(next(), o.addr_off, o.addr_width);
        else if (a == "--words") parse_field(next(), o.words_off, o.words_width);
        else if (a == "--write") o.write_off = std::atoi(next());
        else if (a == "--word-bits") o.word_bits = std::atoi(next());
        else if (a == "--input-ext") {
            const char* v = next();
            if (std::sscanf(v, "%ld:%ld:%ld", &o.input_addr, &o.input_apw, &o.input_bits) != 3 ||
                o.input_addr < 0 || o.input_apw <= 0 || o.input_bits <= 0 || o.input_bits > 32)
                fail(std::string("bad --input-ext ") + v + " (expected ADDR:APW:BITS)");
        }
        else if (a == "--backpressure") o.backpressure = std::strtod(next(), nullptr);
        else if (a == "--seed") o.seed = std::strtoul(next(), nullptr, 10);
        else if (a == "--progress") o.progress = next();
        else if (a == "--waves") o.waves = next();
        else if (a.rfind("--", 0) == 0) fail("unknown option " + a);
        else pos.push_back(a);
    }
    if (pos.size() != 2) fail("usage: harness SAMPLES RESULTS --outputs N --layers N ...");
    o.samples = pos[0];
    o.results = pos[1];
    if (o.outputs < 0 || o.layers < 0 || o.out_bits <= 0 || o.max_cycles <= 0)
        fail("--outputs, --layers, --out-bits and --max-cycles are required");
    if (!(o.bandwidth > 0.0 && o.bandwidth <= 1.0)) fail("--bandwidth must be in (0, 1]");
    if (!(o.backpressure >= 0.0 && o.backpressure < 1.0)) fail("--backpressure must be in [0, 1)");
    if (o.latency < 0) fail("--latency must be >= 0");
    return o;
}

std::vector<int64_t> read_samples(const std::string& path, int64_t& count, int64_t& per) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot read samples file " + path);
    int64_t head[2];
    f.read(reinterpret_cast<char*>(head), sizeof head);
    if (!f || head[0] < 0 || head[1] < 0) fail("samples file " + path + " has no valid header");
    count = head[0];
    per = head[1];
    std::vector<int64_t> data(static_cast<size_t>(count * per));
    f.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * 8));
    if (!f) fail("samples file " + path + " is shorter than its header says");
    return data;
}

std::vector<Word> read_memory(const std::string& path) {
    std::ifstream f(path);
    if (!f) fail("cannot read external memory file " + path);
    std::vector<Word> mem;
    std::string word;
    while (f >> word) mem.push_back(parse_hex(word));
    if (mem.empty()) mem.push_back(Word{0});
    return mem;
}

struct Burst {
    int64_t request_edge;
    uint64_t addr, words, delivered;
    bool write;
};

int64_t due_edge(const Burst& b, uint64_t index, long latency, double bandwidth) {
    return b.request_edge + latency +
           static_cast<int64_t>(std::ceil(static_cast<double>(index + 1) / bandwidth));
}

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);  // +verilator+rand+reset+2 +verilator+seed+N
    auto top = std::make_unique<HWGEN_TOP>(ctx.get());
#ifdef HWGEN_WAVES
    std::unique_ptr<VerilatedFstC> trace;
    if (!opt.waves.empty()) {
        ctx->traceEverOn(true);
        trace = std::make_unique<VerilatedFstC>();
        top->trace(trace.get(), 99);
        trace->open(opt.waves.c_str());
    }
#endif
    int64_t n_samples = 0, per = 0;
    std::vector<int64_t> samples = read_samples(opt.samples, n_samples, per);
#ifdef HWGEN_EXT
    std::vector<Word> memory = read_memory(opt.ext_file);
#endif
    std::mt19937_64 rng(opt.seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);

    int64_t edges = 0;  // rising edges so far (cocotb SimClock.cycle())
    uint64_t sim_time = 0;
    auto dump = [&]() {
#ifdef HWGEN_WAVES
        if (trace) trace->dump(sim_time);
#endif
    };
    int64_t sample = -1;
    std::vector<int64_t> outputs, out_edges;  // output values and the edge each transferred at
    bool burst_active = false;
    Burst burst{};
    uint64_t words_read = 0, words_written = 0;
    const uint64_t out_mask = (opt.out_bits >= 64) ? ~uint64_t{0} : ((uint64_t{1} << opt.out_bits) - 1);

    // one clock cycle: drive the agents, clock low and settle (one eval: the falling edge and
    // the combinational paths from this cycle's inputs), see the transfers, rising edge (one
    // eval). Two evals per cycle; outputs read after cycle() are the registers' new values.
    bool inp_fire = false;
    auto cycle = [&]() {
        top->out___05Fready = (opt.backpressure > 0.0 && uniform(rng) < opt.backpressure) ? 0 : 1;
#ifdef HWGEN_EXT
        uint64_t index = burst_active ? burst.delivered : 0;
        bool present = false, take = false;
        if (burst_active && !burst.write) present = edges + 1 >= due_edge(burst, index, opt.latency, opt.bandwidth);
        if (burst_active && burst.write) take = edges + 1 >= due_edge(burst, index, 0, opt.bandwidth);
        top->ext___05Freq___05Fready = burst_active ? 0 : 1;
        top->ext___05Fresp___05Fvalid = present ? 1 : 0;
        top->ext___05Fwdata___05Fready = take ? 1 : 0;
        if (present) {
            uint64_t a = burst.addr + index;
            if (a >= memory.size()) {
                std::ostringstream m;
                m << "sample " << sample << ", cycle " << edges + 1 << ": burst reads address " << a
                  << ", outside the external memory (" << memory.size() << " words)";
                fail(m.str());
            }
            write_word(top->ext___05Fresp___05Fpayload, memory[a]);
        }
#endif
        top->clk = 0;
        top->eval();
        dump();
        inp_fire = top->inp___05Fvalid && top->inp___05Fready;
        bool out_fire = top->out___05Fvalid && top->out___05Fready;
        int64_t out_value = 0;
        if (out_fire) {
            uint64_t raw = read_port(top->out___05Fpayload) & out_mask;
            if (opt.out_bits < 64 && (raw >> (opt.out_bits - 1)) & 1u) raw |= ~out_mask;
            out_value = static_cast<int64_t>(raw);
        }
#ifdef HWGEN_EXT
        bool request = !burst_active && top->ext___05Freq___05Fvalid;
        uint64_t req_addr = 0, req_words = 0;
        bool req_write = false;
        if (request) {
            req_addr = field(top->ext___05Freq___05Fpayload, opt.addr_off, opt.addr_width);
            req_words = field(top->ext___05Freq___05Fpayload, opt.words_off, opt.words_width);
            req_write = opt.write_off >= 0 && field(top->ext___05Freq___05Fpayload, opt.write_off, 1);
        }
        bool delivered = present && top->ext___05Fresp___05Fready;
        if (take && top->ext___05Fwdata___05Fvalid) {  // a write word is taken: commit it
            uint64_t a = burst.addr + index;
            if (a >= memory.size()) {
                std::ostringstream m;
                m << "sample " << sample << ", cycle " << edges + 1 << ": burst writes address " << a
                  << ", outside the external memory (" << memory.size() << " words)";
                fail(m.str());
            }
            Word d = read_bits(top->ext___05Fwdata___05Fpayload, 0, opt.word_bits);
            Word k = read_bits(top->ext___05Fwdata___05Fpayload, opt.word_bits, opt.word_bits);
            Word& w = memory[a];
            w.resize(d.size(), 0u);
            for (size_t j = 0; j < d.size(); ++j) w[j] = (w[j] & ~k[j]) | (d[j] & k[j]);
            delivered = true;
            ++words_written;
        }
#endif
        sim_time += 5;
        top->clk = 1;
        top->eval();
        dump();
        sim_time += 5;
        ++edges;
        if (out_fire) {
            outputs.push_back(out_value);
            out_edges.push_back(edges);
        }
#ifdef HWGEN_EXT
        if (delivered && !burst.write) ++words_read;
        if (delivered && ++burst.delivered == burst.words) burst_active = false;
        if (request) {
            if (req_words == 0) {
                std::ostringstream m;
                m << "sample " << sample << ", cycle " << edges << ": burst request asks for 0 words";
                fail(m.str());
            }
            burst = Burst{edges, req_addr, req_words, 0, req_write};
            burst_active = true;
        }
#endif
    };

    top->clk = 0;
    top->rst = 1;
    top->start = 0;
    top->inp___05Fvalid = 0;
    top->layer_sel = 0;
    top->eval();
    cycle();
    cycle();
    top->rst = 0;

    std::ofstream res(opt.results);
    if (!res) fail("cannot write results file " + opt.results);
    const int64_t step = std::max<int64_t>(1, n_samples / 100);
    auto t0 = std::chrono::steady_clock::now();
    for (sample = 0; sample < n_samples; ++sample) {
        outputs.clear();
        out_edges.clear();
        const int64_t* x = samples.data() + sample * per;
        int64_t streamed = per;
#ifdef HWGEN_EXT
        if (opt.input_addr >= 0) {  // a spilled program: the input goes into the memory
            streamed = 0;
            const uint64_t lane_mask = (uint64_t{1} << opt.input_bits) - 1;
            for (int64_t e = 0; e < per; ++e) {
                size_t a = static_cast<size_t>(opt.input_addr + e / opt.input_apw);
                if (a >= memory.size()) fail("the input does not fit the external memory");
                Word& w = memory[a];
                w.resize(static_cast<size_t>((opt.word_bits + 31) / 32), 0u);
                long bit = (e % opt.input_apw) * opt.input_bits;
                for (long b = 0; b < opt.input_bits; ++b) {
                    uint32_t& chunk = w[static_cast<size_t>((bit + b) / 32)];
                    uint32_t one = 1u << ((bit + b) % 32);
                    chunk = ((static_cast<uint64_t>(x[e]) & lane_mask) >> b) & 1u ? chunk | one : chunk & ~one;
                }
            }
        }
#endif
        top->start = 1;
        cycle();
        top->start = 0;
        for (int64_t i = 0; i < streamed; ++i) {
            top->inp___05Fvalid = 1;
            write_port(top->inp___05Fpayload, static_cast<uint64_t>(x[i]));
            const int64_t since = edges;
            while (true) {
                cycle();
                if (inp_fire) break;
                if (edges - since > opt.max_cycles) {
                    std::ostringstream m;
                    m << "sample " << sample << ": input element " << i << " was not taken within "
                      << opt.max_cycles << " cycles (cycle " << edges << ")";
                    fail(m.str());
                }
            }
        }
        top->inp___05Fvalid = 0;
        const int64_t waited_from = edges;
        do {
            cycle();
            if (edges - waited_from > opt.max_cycles) {
                std::ostringstream m;
                m << "sample " << sample << ": the accelerator did not finish within " << opt.max_cycles
                  << " cycles (cycle " << edges << ", " << outputs.size() << " of " << opt.outputs
                  << " outputs seen)";
                fail(m.str());
            }
        } while (!top->done);
        res << read_port(top->run_cycles);
        for (long l = 0; l < opt.layers; ++l) {
            cycle();
            write_port(top->layer_sel, static_cast<uint64_t>(l));
            top->eval();
            res << ' ' << read_port(top->layer_count);
        }
        if (static_cast<long>(outputs.size()) != opt.outputs) {
            std::ostringstream m;
            m << "sample " << sample << ": " << outputs.size() << " output values, expected "
              << opt.outputs << " (cycle " << edges << ")";
            fail(m.str());
        }
        res << " :";
        for (int64_t v : outputs) res << ' ' << v;
        res << " @";
        for (int64_t e : out_edges) res << ' ' << e;
        res << '\n';
        cycle();
        if (!opt.progress.empty() && (sample % step == 0 || sample == n_samples - 1)) {
            std::ofstream p(opt.progress);
            p << sample + 1 << ' ' << n_samples << '\n';
        }
    }
    double loop_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->eval();
    res << "total_cycles " << read_port(top->cycle_count) << '\n';
    res << "loop_seconds " << loop_seconds << '\n';
    res << "ext_words " << words_read << ' ' << words_written << '\n';
    res.close();
#ifdef HWGEN_WAVES
    if (trace) trace->close();
#endif
    top->final();
    return 0;
}
