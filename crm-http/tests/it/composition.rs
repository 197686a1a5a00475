//! Resources compose without a limit: poem-openapi implements `OpenApi` for tuples of
//! at most 16 members, and `compose_apis!` (what `crm_http::api` composes its resources
//! with) nests pairs instead. Forty APIs, each a struct with its own operations like a
//! resource, make one service whose spec and routes hold all of them.

use poem::{EndpointExt, Route, http::StatusCode, test::TestClient};
use poem_openapi::{OpenApi, OpenApiService, param::Path, payload::PlainText};

/// Declares resource-like APIs: a struct each, with a listing and a read by id.
macro_rules! resources {
    ($($api:ident $path:literal $list_id:literal $get_id:literal;)*) => {
        $(
            struct $api;

            #[OpenApi(prefix_path = $path)]
            impl $api {
                /// Lists.
                #[oai(path = "/", method = "get", operation_id = $list_id)]
                async fn list(&self) -> PlainText<&'static str> {
                    PlainText($path)
                }

                /// Reads one.
                #[oai(path = "/:id", method = "get", operation_id = $get_id)]
                async fn get(&self, id: Path<u32>) -> PlainText<String> {
                    PlainText(format!("{}/{}", $path, id.0))
                }
            }
        )*
    };
}

resources! {
    R01 "/r01" "listR01" "getR01"; R02 "/r02" "listR02" "getR02"; R03 "/r03" "listR03" "getR03";
    R04 "/r04" "listR04" "getR04"; R05 "/r05" "listR05" "getR05"; R06 "/r06" "listR06" "getR06";
    R07 "/r07" "listR07" "getR07"; R08 "/r08" "listR08" "getR08"; R09 "/r09" "listR09" "getR09";
    R10 "/r10" "listR10" "getR10"; R11 "/r11" "listR11" "getR11"; R12 "/r12" "listR12" "getR12";
    R13 "/r13" "listR13" "getR13"; R14 "/r14" "listR14" "getR14"; R15 "/r15" "listR15" "getR15";
    R16 "/r16" "listR16" "getR16"; R17 "/r17" "listR17" "getR17"; R18 "/r18" "listR18" "getR18";
    R19 "/r19" "listR19" "getR19"; R20 "/r20" "listR20" "getR20"; R21 "/r21" "listR21" "getR21";
    R22 "/r22" "listR22" "getR22"; R23 "/r23" "listR23" "getR23"; R24 "/r24" "listR24" "getR24";
    R25 "/r25" "listR25" "getR25"; R26 "/r26" "listR26" "getR26"; R27 "/r27" "listR27" "getR27";
    R28 "/r28" "listR28" "getR28"; R29 "/r29" "listR29" "getR29"; R30 "/r30" "listR30" "getR30";
    R31 "/r31" "listR31" "getR31"; R32 "/r32" "listR32" "getR32"; R33 "/r33" "listR33" "getR33";
    R34 "/r34" "listR34" "getR34"; R35 "/r35" "listR35" "getR35"; R36 "/r36" "listR36" "getR36";
    R37 "/r37" "listR37" "getR37"; R38 "/r38" "listR38" "getR38"; R39 "/r39" "listR39" "getR39";
    R40 "/r40" "listR40" "getR40";
}

#[tokio::test]
async fn forty_resource_apis_compose_into_one_service() {
    let apis = crm_http::compose_apis!(
        R01, R02, R03, R04, R05, R06, R07, R08, R09, R10, R11, R12, R13, R14, R15, R16, R17, R18, R19, R20, R21, R22,
        R23, R24, R25, R26, R27, R28, R29, R30, R31, R32, R33, R34, R35, R36, R37, R38, R39, R40,
    );
    let service = OpenApiService::new(apis, "forty", "1");
    let spec: serde_json::Value = serde_json::from_str(&service.spec()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 80, "a listing and a read for each of the 40: {:?}", paths.keys());
    for n in 1..=40 {
        assert_eq!(spec["paths"][format!("/r{n:02}")]["get"]["operationId"], format!("listR{n:02}"));
        assert_eq!(spec["paths"][format!("/r{n:02}/{{id}}")]["get"]["operationId"], format!("getR{n:02}"));
    }
    // Every route answers, the last as well as the first.
    let cli = TestClient::new(Route::new().nest("/", service).boxed());
    for n in [1, 16, 17, 40] {
        let reply = cli.get(format!("/r{n:02}/7")).send().await;
        reply.assert_status(StatusCode::OK);
        reply.assert_text(format!("/r{n:02}/7")).await;
    }
}

#[test]
fn the_api_composes_every_resource() {
    let spec: serde_json::Value = serde_json::from_str(&crm_http::api::service().spec()).unwrap();
    let tags: Vec<&str> = spec["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tags.len(), 25, "{tags:?}");
    let paths = spec["paths"].as_object().unwrap();
    for tag in tags {
        let used = paths
            .values()
            .flat_map(|m| m.as_object().unwrap().values())
            .any(|op| op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag)));
        assert!(used, "no operation of {tag} is in the spec: its API is not composed");
    }
}
