namespace Shepherd.Tests.Configuration;

using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Shepherd.Configuration;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>
/// docs/shepherd.schema.json and docs/configuration.md against the configuration records: every key the binder
/// accepts is in both, nothing else is, types, nullability and defaults agree, and every example loads.
/// </summary>
public sealed partial class ConfigDocumentationTests
{
    private static readonly string Docs = Path.Combine(RepositoryRoot(), "docs");

    private static readonly Lazy<JsonDocument> Schema = new(() => JsonDocument.Parse(File.ReadAllText(Path.Combine(Docs, "shepherd.schema.json"))));

    private static readonly Lazy<string> Reference = new(() => File.ReadAllText(Path.Combine(Docs, "configuration.md")).ReplaceLineEndings("\n"));

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Shepherd.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Shepherd.slnx not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void Schema_IsDraft2020_12WithATitle()
    {
        var root = Schema.Value.RootElement;
        Assert.Equal("https://json-schema.org/draft/2020-12/schema", root.GetProperty("$schema").GetString());
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("title").GetString()));
    }

    [Fact]
    public void Schema_KeysTypesAndDefaults_MatchTheConfigurationRecords()
    {
        var problems = new List<string>();
        CompareObject(typeof(ShepherdConfig), Schema.Value.RootElement, "(root)", problems);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Schema_EveryObjectClosedAndEveryPropertyDescribed()
    {
        var problems = new List<string>();
        Walk(Schema.Value.RootElement, "#", problems);
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        static void Walk(JsonElement element, string at, List<string> problems)
        {
            if (element.ValueKind == JsonValueKind.Object)
            {
                if (element.TryGetProperty("properties", out var properties))
                {
                    if (!element.TryGetProperty("additionalProperties", out var additional) || additional.ValueKind != JsonValueKind.False)
                    {
                        problems.Add($"{at}: additionalProperties must be false");
                    }

                    foreach (var property in properties.EnumerateObject())
                    {
                        if (!Resolve(property.Value).TryGetProperty("description", out _) && !property.Value.TryGetProperty("description", out _))
                        {
                            problems.Add($"{at}/properties/{property.Name}: no description");
                        }
                    }
                }

                foreach (var child in element.EnumerateObject())
                {
                    Walk(child.Value, $"{at}/{child.Name}", problems);
                }
            }
            else if (element.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var child in element.EnumerateArray())
                {
                    Walk(child, $"{at}/{i++}", problems);
                }
            }
        }
    }

    [Fact]
    public void Schema_ProviderTypeEnum_IsEveryShippedAdapter()
    {
        var type = Definition("provider").GetProperty("properties").GetProperty("type");
        Assert.Equal(ProviderTypes.All, EnumOf(type).Select(v => v.GetString()!));
    }

    [Fact]
    public void Schema_DeveloperRoleEnum_MatchesTheValidator()
    {
        var role = Definition("provider").GetProperty("properties").GetProperty("developer_role");
        Assert.Equal(["keep", "system", null], EnumOf(role).Select(v => v.ValueKind == JsonValueKind.Null ? null : v.GetString()));
        foreach (var value in new[] { "keep", "system" })
        {
            AssertValid($"providers: [ {{ name: p, type: openai, base_url: \"https://x\", developer_role: {value} }} ]\nmodels: [ {{ name: m, deployments: [ {{ provider: p }} ] }} ]");
        }
    }

    [Fact]
    public void Schema_LoggingEnums_AcceptedByTheValidator()
    {
        var logging = Definition("logging").GetProperty("properties");
        foreach (var level in EnumOf(logging.GetProperty("level")))
        {
            AssertValid(Minimal + $"\nlogging: {{ level: {level.GetString()} }}");
        }

        foreach (var format in EnumOf(logging.GetProperty("format")))
        {
            AssertValid(Minimal + $"\nlogging: {{ format: {format.GetString()} }}");
        }
    }

    [Fact]
    public void Reference_MentionsEveryKey()
    {
        var missing = AllKeys(typeof(ShepherdConfig)).Where(key => !Reference.Value.Contains($"| `{key}` |", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "not in a reference table of docs/configuration.md: " + string.Join(", ", missing));
    }

    [Fact]
    public void Reference_EveryYamlExampleLoadsWithoutErrors()
    {
        var examples = YamlBlocks().ToList();
        Assert.True(examples.Count >= 5, $"only {examples.Count} yaml examples found");
        foreach (var example in examples)
        {
            var result = Load(example);
            Assert.True(result.IsValid, $"example does not load:\n{example}\n--\n{string.Join("\n", Errors(result))}");
        }
    }

    [Fact]
    public void Reference_ShowsTheDemoConfigurationVerbatim()
    {
        Assert.Contains(DemoConfig.Yaml.ReplaceLineEndings("\n").Trim(), YamlBlocks().Select(b => b.Trim()));
    }

    [Fact]
    public void Reference_CompleteExampleIsTheIssueExample()
    {
        Assert.Contains(ConfigLoaderTests.IssueExample.ReplaceLineEndings("\n").Trim(), YamlBlocks().Select(b => b.Trim()));
    }

    [Fact]
    public void Reference_ConfigCheckOutputExampleIsWhatTheLoaderPrints()
    {
        var errors = Errors(Load(ConfigLoaderTests.FiveMistakes)).Select(e => $"error: {e}");
        foreach (var line in errors)
        {
            Assert.Contains(line + "\n", Reference.Value, StringComparison.Ordinal);
        }
    }

    private static IEnumerable<string> YamlBlocks() =>
        YamlBlock().Matches(Reference.Value).Select(m => m.Groups["body"].Value);

    [GeneratedRegex("```yaml\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex YamlBlock();

    private static IEnumerable<string> AllKeys(Type type)
    {
        foreach (var key in ConfigBinder.KeysOf(type))
        {
            yield return key;
            if (ConfigRecord(PropertyOf(type, key).PropertyType) is { } nested)
            {
                foreach (var inner in AllKeys(nested))
                {
                    yield return inner;
                }
            }
        }
    }

    private static PropertyInfo PropertyOf(Type type, string key) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Single(p => ConfigBinder.ToSnakeCase(p.Name) == key);

    /// <summary>The configuration record a property holds, directly, as a nullable or in a list.</summary>
    private static Type? ConfigRecord(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            type = type.GetGenericArguments()[0];
        }

        return type.IsClass && type != typeof(string) && type.Namespace == typeof(ShepherdConfig).Namespace && !typeof(IEnumerable).IsAssignableFrom(type) ? type : null;
    }

    private static JsonElement Definition(string name) => Schema.Value.RootElement.GetProperty("$defs").GetProperty(name);

    /// <summary>Follows <c>$ref</c> (and an <c>anyOf</c> of a <c>$ref</c> and null) to the schema that describes the value.</summary>
    private static JsonElement Resolve(JsonElement schema)
    {
        if (schema.TryGetProperty("$ref", out var reference))
        {
            var name = reference.GetString()!;
            Assert.StartsWith("#/$defs/", name, StringComparison.Ordinal);
            return Definition(name["#/$defs/".Length..]);
        }

        if (schema.TryGetProperty("anyOf", out var anyOf) && anyOf.EnumerateArray().FirstOrDefault(a => a.TryGetProperty("$ref", out _)) is { ValueKind: JsonValueKind.Object } target &&
            !target.GetProperty("$ref").GetString()!.EndsWith("/interpolated", StringComparison.Ordinal))
        {
            return Resolve(target);
        }

        return schema;
    }

    private static bool AllowsNull(JsonElement schema) =>
        Types(schema).Contains("null") ||
        (schema.TryGetProperty("anyOf", out var anyOf) && anyOf.EnumerateArray().Any(a => Types(a).Contains("null")));

    private static HashSet<string> Types(JsonElement schema)
    {
        if (!schema.TryGetProperty("type", out var type))
        {
            return [];
        }

        return type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()!).ToHashSet() : [type.GetString()!];
    }

    private static IEnumerable<JsonElement> EnumOf(JsonElement schema)
    {
        if (schema.TryGetProperty("enum", out var direct))
        {
            return direct.EnumerateArray();
        }

        return schema.GetProperty("anyOf").EnumerateArray().First(a => a.TryGetProperty("enum", out _)).GetProperty("enum").EnumerateArray();
    }

    private static void CompareObject(Type type, JsonElement schema, string at, List<string> problems)
    {
        if (!Types(schema).SetEquals(["object"]))
        {
            problems.Add($"{at}: type should be object");
        }

        var properties = schema.TryGetProperty("properties", out var p) ? p.EnumerateObject().ToDictionary(x => x.Name, x => x.Value) : [];
        var keys = ConfigBinder.KeysOf(type).ToHashSet(StringComparer.Ordinal);
        foreach (var key in keys.Where(k => !properties.ContainsKey(k)))
        {
            problems.Add($"{at}.{key}: accepted by the binder ({type.Name}) but missing from the schema");
        }

        foreach (var key in properties.Keys.Where(k => !keys.Contains(k)))
        {
            problems.Add($"{at}.{key}: in the schema but not a key of {type.Name}");
        }

        var defaults = Activator.CreateInstance(type)!;
        var nullability = new NullabilityInfoContext();
        foreach (var key in keys.Where(properties.ContainsKey))
        {
            var property = PropertyOf(type, key);
            ComparePropertyType(property, properties[key], $"{at}.{key}", nullability, problems);
            CompareDefault(property.GetValue(defaults), properties[key], $"{at}.{key}", problems);
        }
    }

    private static void ComparePropertyType(PropertyInfo property, JsonElement schema, string at, NullabilityInfoContext nullability, List<string> problems)
    {
        var nullable = nullability.Create(property).WriteState == NullabilityState.Nullable;
        if (AllowsNull(schema) != nullable)
        {
            problems.Add($"{at}: the schema {(nullable ? "does not allow" : "allows")} null, the record's property is {(nullable ? "" : "not ")}nullable");
        }

        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        var resolved = Resolve(schema);
        var types = Types(resolved);
        types.Remove("null");

        // Numbers and booleans also take a string: a ${VAR} reference is only resolved at load time.
        HashSet<string>? expected = type switch
        {
            _ when type == typeof(string) => ["string"],
            _ when type == typeof(int) || type == typeof(long) => ["integer", "string"],
            _ when type == typeof(double) || type == typeof(decimal) => ["number", "string"],
            _ when type == typeof(bool) => ["boolean", "string"],
            _ when type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) => ["array"],
            _ when type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>) => ["object"],
            _ => null,
        };

        if (expected is not null && !types.SetEquals(expected))
        {
            problems.Add($"{at}: schema type [{string.Join(", ", types)}], expected [{string.Join(", ", expected)}] for {type.Name}");
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            var element = type.GetGenericArguments()[0];
            var items = Resolve(resolved.GetProperty("items"));
            if (element == typeof(string))
            {
                if (!Types(items).SetEquals(["string"]))
                {
                    problems.Add($"{at}[]: items should be strings");
                }
            }
            else
            {
                CompareObject(element, items, $"{at}[]", problems);
            }
        }
        else if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            if (!resolved.TryGetProperty("additionalProperties", out var values) || !Types(values).SetEquals(["string"]))
            {
                problems.Add($"{at}: a map of strings needs additionalProperties: {{ type: string }}");
            }
        }
        else if (ConfigRecord(type) is { } record)
        {
            CompareObject(record, resolved, at, problems);
        }
    }

    private static void CompareDefault(object? value, JsonElement schema, string at, List<string> problems)
    {
        var hasDefault = schema.TryGetProperty("default", out var declared);
        switch (value)
        {
            case string s when s.Length > 0:
            case bool:
            case int or long or double or decimal:
                var expected = JsonSerializer.SerializeToElement(value);
                if (!hasDefault || declared.GetRawText() != expected.GetRawText() &&
                    !(declared.ValueKind == JsonValueKind.Number && expected.ValueKind == JsonValueKind.Number && declared.GetDecimal() == expected.GetDecimal()))
                {
                    problems.Add($"{at}: default should be {expected.GetRawText()} (schema: {(hasDefault ? declared.GetRawText() : "none")})");
                }

                break;
            case null:
            case string:
                if (hasDefault && declared.ValueKind != JsonValueKind.Null)
                {
                    problems.Add($"{at}: the record has no default, the schema says {declared.GetRawText()}");
                }

                break;
            case IList list:
                if (hasDefault && (declared.ValueKind != JsonValueKind.Array || declared.GetArrayLength() != list.Count))
                {
                    problems.Add($"{at}: default should be an empty list");
                }

                break;
        }
    }
}
