fn main() {
    std::process::exit(pav_pipeline::cli::main());
}
