//! `gpushare policies` and `gpushare catalog`: what a scenario can name.

pub(crate) fn list_policies(markdown: bool) {
    if markdown {
        print!("{}", gpushare_policies::docs::policies_markdown());
    } else {
        print!("{}", gpushare_policies::docs::policies_text());
    }
}

pub(crate) fn list_catalog() {
    println!("GPUs (name: SMs, memory, memory bandwidth, host link, FP32):");
    for d in gpushare_sim::device::builtin_devices() {
        println!(
            "  {:<11} {:>3} SMs, {:>7.0} MiB, {:>5.0} GB/s, link {:>3.0} GB/s, {:>5.1} TFLOP/s",
            d.name, d.sms, d.memory_mib, d.mem_bandwidth_gbps, d.host_link_gbps, d.fp32_tflops
        );
    }
    println!("function profiles (name: what, source):");
    for (name, p) in gpushare_sim::catalog::builtin_profiles() {
        println!("  {:<14} {} — {}", name, p.description, p.source);
        if let Some(g) = &p.kernel_graph {
            let buffers: Vec<String> = g
                .buffers
                .iter()
                .map(|b| {
                    let digits = if b.mib < 1.0 { 3 } else { 1 };
                    format!(
                        "{} {:.digits$} MiB{}",
                        b.name,
                        b.mib,
                        if b.constant { " const" } else { "" }
                    )
                })
                .collect();
            println!(
                "  {:<14} kernel graph: dispatch {:.1} ms; {}",
                "",
                g.dispatch_ms,
                buffers.join(", ")
            );
        }
    }
    println!("LLMs for azure_llm workloads (name: parameters, layers, KV heads × size, source):");
    for m in gpushare_traces::llm::builtin_llms() {
        println!(
            "  {:<11} {:.2} B, {} layers, {} × {}, {}",
            m.name,
            m.parameters / 1e9,
            m.layers,
            m.kv_heads,
            m.head_dim,
            m.source
        );
    }
}
