namespace Shepherd.Configuration;

/// <summary>The configuration used when no file is given: two simulated models, no external service, no key.</summary>
public static class DemoConfig
{
    public const string Yaml = """
        # Shepherd's built-in demo configuration: simulated models only.
        listen: http://127.0.0.1:8080
        master_key: ${SHEPHERD_MASTER_KEY:-}
        providers:
          - name: simulated-fast
            type: simulated
            simulated: { time_to_first_token_ms: 20, tokens_per_second: 400, response_tokens: 32 }
          - name: simulated-smart
            type: simulated
            simulated: { time_to_first_token_ms: 250, tokens_per_second: 60, response_tokens: 64 }
        models:
          - name: demo-fast
            aliases: [ fast ]
            context_window: 128000
            max_output_tokens: 4096
            price: { input: 0.10, output: 0.40, cached_input: 0.025 }
            owned_by: shepherd
            deployments:
              - { provider: simulated-fast, model: demo-fast }
          - name: demo-smart
            aliases: [ smart ]
            context_window: 200000
            max_output_tokens: 8192
            price: { input: 2.00, output: 8.00, cached_input: 0.50 }
            owned_by: shepherd
            deployments:
              - { provider: simulated-smart, model: demo-smart }
        """;
}
